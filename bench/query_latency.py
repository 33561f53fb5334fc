"""Query latency: fresh `clipsearch` processes, and queries answered by `clipsearch serve`.

    python bench/query_latency.py --db DB --image NEW.jpg [--runs 7] [--served 200] [--json OUT]

DB is an indexed database (for example one from bench/synthetic_catalog.py, 100k fake photos); NEW.jpg an image
that is not indexed. It measures, one after another on an otherwise idle machine:

  cold text query     `clipsearch query ...` in a new process: wall time and peak RSS, median of --runs
  cold similar        `clipsearch similar` with an indexed photo (stored vector) and with NEW.jpg (embedded)
  served              the same three through a running `clipsearch serve`: first as a round trip on the socket
                      (clipsearch.Library.answer, what the CLI does), p50/p95 over --served queries, then as
                      whole CLI processes

and prints each beside its target: the alternative's 1.1 s (text) and 1.5 s (image) for a cold process, and 50 ms
for the resident mode. The first cold text query of a database whose numpy copy of the model is missing loads
torch and writes the copy; it is reported apart ("first ever") and the medians exclude it.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TEXTS = ["sunset over the beach", "a dog playing in the snow", "birthday cake with candles", "red bicycle",
         "mountains reflected in a lake", "a cat sleeping on a sofa", "street at night in the rain", "wedding"]
TARGETS = {"text": 1.1, "image": 1.5}
SERVED_TARGET_S = 0.050


def _run(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one CLI process."""
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "clipsearch", *args], cwd=REPO, env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS, which Popen.wait would not give
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in (0, 1):
            stderr.seek(0)
            raise SystemExit(f"query_latency: {' '.join(args)} failed: {stderr.read().decode(errors='replace')}")
    return seconds, usage.ru_maxrss * 1024


def _indexed_photo(db: Path) -> str:
    with sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT path FROM files ORDER BY id LIMIT 1 OFFSET 7").fetchone()
    return os.fsdecode(row[0])


def _cold(db: Path, image: Path, runs: int, env: dict[str, str]) -> dict:
    common = ["--db", str(db), "-f", "paths"]
    cases = {
        "text": lambda i: ["query", TEXTS[i % len(TEXTS)], *common],
        "similar (indexed)": lambda i: ["similar", _indexed_photo(db), *common],
        "similar (new file)": lambda i: ["similar", str(image), *common],
    }
    report = {}
    for name, args in cases.items():
        measured = [_run(args(i), env) for i in range(runs + 1)]
        first, rest = measured[0], measured[1:]
        # The first-ever run may load torch and export the numpy copy of the model: its memory is reported apart.
        report[name] = {"first_s": first[0], "median_s": statistics.median(s for s, _ in rest),
                        "min_s": min(s for s, _ in rest), "peak_rss_bytes": max(r for _, r in rest),
                        "first_peak_rss_bytes": first[1]}
    return report


def _served(db: Path, image: Path, count: int, env: dict[str, str], runs: int) -> dict:
    from clipsearch.config import DataDir
    from clipsearch.library import Library
    from clipsearch.library.remote import server_info
    from clipsearch.search.request import QueryKind, QueryOptions

    data_dir = DataDir(db)
    server = subprocess.Popen([sys.executable, "-m", "clipsearch", "serve", "--db", str(db)], cwd=REPO, env=env,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        started = time.perf_counter()
        for line in server.stderr:
            if line.startswith("serving "):
                break
        else:
            raise SystemExit("query_latency: the server did not start")
        startup = time.perf_counter() - started
        assert server_info(data_dir) is not None
        report: dict = {"server_startup_s": startup}
        # Each text differs (a server remembers the vectors of texts it has seen: that would be too easy).
        cases = {"text": ("text", lambda i: f"{TEXTS[i % len(TEXTS)]} {i}"),
                 "similar (indexed)": ("image", lambda i: _indexed_photo(db)),
                 "similar (new file)": ("image", lambda i: str(image))}
        library = Library(db)
        for name, (kind, query) in cases.items():
            times = []
            before = server_info(data_dir)["answered"]
            for i in range(count if kind == "text" or "indexed" in name else max(10, count // 10)):
                start = time.perf_counter()
                library.answer(QueryKind(kind), [query(i)], QueryOptions(limit=10))
                times.append(time.perf_counter() - start)
            assert server_info(data_dir)["answered"] == before + len(times), "the server should answer"
            times.sort()
            report[name] = {"p50_s": statistics.median(times), "p95_s": times[int(0.95 * (len(times) - 1))],
                            "queries": len(times)}
        cli = _cold(db, image, runs, env)
        for name, figures in cli.items():
            report[name]["cli_process_median_s"] = figures["median_s"]
            report[name]["cli_process_peak_rss_bytes"] = figures["peak_rss_bytes"]
        server_rss = _process_rss(server.pid)
        report["server_rss_bytes"] = server_rss
        return report
    finally:
        server.terminate()
        server.wait(timeout=60)


def _process_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--image", type=Path, required=True, help="an image file that is not in the database")
    parser.add_argument("--runs", type=int, default=7, help="cold processes per case (plus the first)")
    parser.add_argument("--served", type=int, default=200, help="queries per case through the server")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # As installed by pip: bytecode cached (an environment that forbids writing it pays ~50 ms per process).
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["CLIPSEARCH_NO_SERVER"] = "1"
    with sqlite3.connect(f"file:{args.db / 'catalog.db'}?mode=ro", uri=True) as connection:
        images = connection.execute("SELECT count(*) FROM files").fetchone()[0]
    print(f"database {args.db}: {images:,} images; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    cold = _cold(args.db, args.image, args.runs, env)
    print("\nfresh process (no server)        median     min   first ever   peak RSS (first)   target   median/target")
    for name, f in cold.items():
        target = TARGETS["text" if name == "text" else "image"]
        print(f"  {name:<28} {f['median_s']:7.2f} s {f['min_s']:6.2f} s {f['first_s']:9.2f} s "
              f"{f['peak_rss_bytes'] / 2**20:7.0f} MB ({f['first_peak_rss_bytes'] / 2**20:4.0f})   {target:4.1f} s   "
              f"{f['median_s'] / target:5.2f}")
    served_env = {key: value for key, value in env.items() if key != "CLIPSEARCH_NO_SERVER"}
    served = _served(args.db, args.image, args.served, served_env, args.runs)
    print(f"\nwith `clipsearch serve` (started in {served['server_startup_s']:.1f} s, "
          f"peak RSS {served['server_rss_bytes'] / 2**20:.0f} MB)")
    print("                                 socket p50   p95      p50/50ms   whole CLI process (median)")
    for name in cold:
        f = served[name]
        ratio = f["p50_s"] / SERVED_TARGET_S
        print(f"  {name:<28} {1000 * f['p50_s']:7.1f} ms {1000 * f['p95_s']:6.1f} ms {ratio:8.2f}"
              f"       {f['cli_process_median_s']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"images": images, "cold": cold, "served": served}, indent=2))


if __name__ == "__main__":
    main()
