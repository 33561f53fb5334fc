"""`index --ray local` against local indexing, side by side on one machine.

    python bench/ray_index.py /tmp/corpus200 --pretrained /tmp/vitb32-256-random.pt --json bench/results/ray.json

Each run indexes CORPUS into a fresh database with ViT-B-32-256 (random weights: the time is the real model's):
locally, then through a local Ray instance with 1 and with 2 actors, alternating for --rounds. Reported: the whole
command (Ray's start-up included), the time from the actors being ready to the end (what a long run is made of),
images/s for both, and the overhead per image against local indexing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from index_throughput import cpu_name  # noqa: E402


def run(corpus: Path, db: Path, model: list[str], ray: list[str]) -> dict:
    shutil.rmtree(db, ignore_errors=True)
    command = [sys.executable, "-m", "clipsearch", "index", str(corpus), "--db", str(db), *model, *ray]
    env = {**os.environ, "CLIPSEARCH_NO_SERVER": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    began = time.perf_counter()
    ready = None
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    for line in process.stderr:
        if ready is None and ("Ray actor" in line or line.startswith("indexing:")):
            ready = time.perf_counter()
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    end = time.perf_counter()
    return {"whole_s": end - began, "after_ready_s": end - (ready or began)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--pretrained", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    files = sum(1 for p in args.corpus.rglob("*") if p.is_file())
    model = ["--model", "ViT-B-32-256", "--pretrained", args.pretrained]
    cases = {"local": [], "ray, 1 actor": ["--ray", "local", "--ray-actors", "1"],
             "ray, 2 actors": ["--ray", "local", "--ray-actors", "2"]}
    work = Path(tempfile.mkdtemp(prefix="ray-index-"))
    print(f"cpu: {cpu_name()}; {files} photos in {args.corpus}")
    figures: dict = {"cpu": cpu_name(), "files": files, "cases": {name: [] for name in cases}}
    try:
        for _ in range(args.rounds):
            for name, extra in cases.items():
                figures["cases"][name].append(run(args.corpus, work / "db", model, extra))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    local = statistics.median(r["whole_s"] for r in figures["cases"]["local"])
    for name, runs in figures["cases"].items():
        whole = statistics.median(r["whole_s"] for r in runs)
        after = statistics.median(r["after_ready_s"] for r in runs)
        print(f"{name:>14}: whole command {files / whole:5.1f} images/s ({whole:.1f} s), after start-up "
              f"{files / after:5.1f} images/s; overhead {(whole - local) / files * 1e3:+.1f} ms per image")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
