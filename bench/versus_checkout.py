"""This checkout against another one (an earlier commit's worktree), side by side in one run: no regression.

    git worktree add /tmp/before 4509040
    python bench/index_throughput.py --make-checkpoint ViT-B-32-256 /tmp/vitb32-256-random.pt
    python bench/versus_checkout.py /tmp/before --corpus /tmp/corpus200 \\
        --pretrained /tmp/vitb32-256-random.pt [--rounds 2] [--json PATH]

Each round runs, for each checkout in turn (the order alternates between rounds, so that background load falls on
both alike), each command a new process of that checkout's `python -m clipsearch`:

  first index    `index CORPUS` into a new database: model load, conversion, query model and every photo
  used index     `index CORPUS` again into a copy of a database that indexed one other photo (its caches made)
  cold text      `query TEXT` in a new process, no server (median of --queries)
  cold similar   `similar` of an indexed photo in a new process, no server (median of --queries)
  served text    `query TEXT` while that checkout's `serve` runs (median of --queries), and the same for
  served similar `similar` of an indexed photo

Wall time is the whole process; peak RSS comes from /usr/bin/time. The CPU model and flags are printed: compare
figures only within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from index_throughput import cpu_name  # noqa: E402

MODEL = "ViT-B-32-256"
TEXT = "a dog playing on the beach"


def timed(checkout: Path, args: list[str], env: dict[str, str], work: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stderr) of one `python -m clipsearch ARGS` process of a checkout."""
    report = work / "time.txt"
    command = ["/usr/bin/time", "-f", "%M", "-o", str(report), sys.executable, "-m", "clipsearch", *args]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=checkout, env={**env, "PYTHONPATH": str(checkout)}, capture_output=True,
                          text=True)
    wall = time.perf_counter() - began
    if done.returncode not in (0, 1):
        raise SystemExit(f"versus_checkout: {checkout}: clipsearch {' '.join(args)} failed: {done.stderr[-2000:]}")
    return wall, float(report.read_text().split()[-1]) / 1024, done.stderr


@contextlib.contextmanager
def serving(checkout: Path, db: Path, env: dict[str, str]) -> Iterator[None]:
    server = subprocess.Popen([sys.executable, "-m", "clipsearch", "serve", "--db", str(db)], cwd=checkout,
                              env={**env, "PYTHONPATH": str(checkout)}, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if line.startswith("serving "):
                break
        else:
            raise SystemExit(f"versus_checkout: {checkout}: serve did not start")
        yield
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def one_checkout(checkout: Path, corpus: Path, model_args: list[str], queries: int, work: Path,
                 env: dict[str, str]) -> dict:
    model = model_args
    figures: dict[str, dict] = {}
    first = work / "first"
    wall, rss, _ = timed(checkout, ["index", str(corpus), "--db", str(first), "-q", *model], env, work)
    figures["first index"] = {"s": wall, "rss_mb": rss}
    seed_photo = work / "seed"
    seed_photo.mkdir()
    shutil.copy(next(p for p in sorted(corpus.rglob("*.JPG"))), seed_photo)
    used = work / "used"
    timed(checkout, ["index", str(seed_photo), "--db", str(used), "-q", *model], env, work)
    wall, rss, _ = timed(checkout, ["index", str(corpus), "--db", str(used), "-q"], env, work)
    figures["used index"] = {"s": wall, "rss_mb": rss}
    photo = str(next(p for p in sorted(corpus.rglob("*.JPG"))))
    cases = {"text": ["query", TEXT, "--db", str(first)], "similar": ["similar", photo, "--db", str(first)]}
    for name, args in cases.items():
        runs = [timed(checkout, args, {**env, "CLIPSEARCH_NO_SERVER": "1"}, work) for _ in range(queries + 1)]
        rest = runs[1:]  # the first may write the query model or rebuild the index: not a steady cold query
        figures[f"cold {name}"] = {"s": statistics.median(r[0] for r in rest), "rss_mb": max(r[1] for r in rest)}
    with serving(checkout, first, env):
        for name, args in cases.items():
            runs = [timed(checkout, args, env, work) for _ in range(queries + 1)][1:]
            figures[f"served {name}"] = {"s": statistics.median(r[0] for r in runs), "rss_mb": max(r[1] for r in runs)}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="the other checkout (e.g. a worktree of an earlier commit)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--model", default=MODEL, help=f"open_clip model name or config (default {MODEL})")
    parser.add_argument("--pretrained", required=True, help="a checkpoint file for it (random weights will do)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--queries", type=int, default=3, help="processes per query case, after a first one")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": BENCH.parent}
    env = {k: v for k, v in os.environ.items() if k not in ("CLIPSEARCH_DB", "CLIPSEARCH_NO_SERVER")}
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; corpus {args.corpus} "
          f"({sum(1 for p in args.corpus.rglob('*') if p.is_file() and not p.name.startswith('.'))} files)")
    results: dict[str, list[dict]] = {name: [] for name in checkouts}
    for round_number in range(args.rounds):
        order = list(checkouts) if round_number % 2 == 0 else list(reversed(checkouts))
        for name in order:
            with tempfile.TemporaryDirectory(prefix=f"versus-{name}-") as work:
                results[name].append(one_checkout(checkouts[name], args.corpus, ["--model", args.model,
                                                  "--pretrained", args.pretrained], args.queries, Path(work), env))
            print(f"round {round_number + 1}, {name}: " + ", ".join(
                f"{case} {f['s']:.2f} s" for case, f in results[name][-1].items()), flush=True)
    print(f"\n{'case':<16}{'before s':>10}{'after s':>10}{'after/before':>14}{'before MB':>11}{'after MB':>10}")
    for case in results["before"][0]:
        before = statistics.median(r[case]["s"] for r in results["before"])
        after = statistics.median(r[case]["s"] for r in results["after"])
        before_mb = max(r[case]["rss_mb"] for r in results["before"])
        after_mb = max(r[case]["rss_mb"] for r in results["after"])
        print(f"{case:<16}{before:>10.2f}{after:>10.2f}{after / before:>14.2f}{before_mb:>11.0f}{after_mb:>10.0f}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
