"""A text query narrowed by a date filter that few photos pass: how fast, and whether it finds their best.

    python bench/synthetic_catalog.py --n 1000000 /tmp/cat1m --model ViT-B-32-256 \\
        --pretrained /tmp/vitb32-256-random.pt --index-from /tmp/vs1m
    python bench/filtered_query.py --db /tmp/cat1m --after 2015-01 --before 2015-03

In one run, on DB: the share of photos the filter passes; a fresh `clipsearch query TEXT --after A --before B`
process (wall time and peak RSS, median of --runs); the same through a running `clipsearch serve` (p50 of
--served socket round trips); and recall@10 of the answers against exact search over the photos that pass,
computed here with numpy from the catalogue's vectors and the query vector of the database's query model.

Targets (issue "Understand the library"): over 1M photos with a filter passing about 1%, <= 1 s from a new
process, <= 50 ms through serve, recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
from index_throughput import cpu_name  # noqa: E402

from clipsearch.config import DataDir  # noqa: E402
from clipsearch.library import Library  # noqa: E402
from clipsearch.library.remote import server_info  # noqa: E402
from clipsearch.search.request import Filters, QueryKind, QueryOptions  # noqa: E402
from clipsearch.search.searcher import Searcher  # noqa: E402

TEXTS = ["red bicycle", "birthday cake", "a dog on the beach", "snowy mountain", "receipt", "sunset"]


def _cold(db: Path, text: str, after: str, before: str) -> tuple[float, float, list[str]]:
    env = {**os.environ, "CLIPSEARCH_NO_SERVER": "1"}
    command = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "clipsearch", "query", text, "--after", after,
               "--before", before, "-f", "json", "--db", str(db)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, check=True)
    wall, peak = done.stderr.strip().splitlines()[-1].split()
    return float(wall), int(peak) / 1024, [r["path"] for r in json.loads(done.stdout)]


def _exact(db: Path, text: str, filters: Filters) -> list[str]:
    searcher = Searcher(DataDir(db))
    try:
        ids = searcher.catalog.files.filtered_ids(after=filters.after, before=filters.before)
        query = searcher.embedder.texts([text])[0]
        best_ids, best = [], []
        for chunk_ids, vectors in searcher.catalog.files.vectors(ids.tolist()):
            best_ids.append(chunk_ids)
            best.append(vectors @ query)
        scores, all_ids = np.concatenate(best), np.concatenate(best_ids)
        top = all_ids[np.argsort(-scores)[:10]].tolist()
        records = searcher.catalog.files.records(top)
        return [records[i].path for i in top], len(ids), searcher.catalog.files.count()
    finally:
        searcher.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--after", default="2015-01")
    parser.add_argument("--before", default="2015-03")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--served", type=int, default=100)
    args = parser.parse_args()
    filters = Filters.from_options(after=args.after, before=args.before)
    print(f"cpu: {cpu_name()}")
    recalls, walls, peaks = [], [], []
    for run in range(args.runs):
        text = TEXTS[run % len(TEXTS)]
        wall, peak, found = _cold(args.db, text, args.after, args.before)
        exact, passing, total = _exact(args.db, text, filters)
        walls.append(wall)
        peaks.append(peak)
        recalls.append(len(set(found) & set(exact)) / len(exact))
    print(f"filter --after {args.after} --before {args.before}: {passing:,} of {total:,} photos pass "
          f"({100 * passing / total:.2f}%)")
    print(f"fresh process: median {statistics.median(walls):.2f} s, peak RSS {statistics.median(peaks):.0f} MB "
          f"(target 1 s); recall@10 against exact search over the passing photos: {min(recalls):.3f} (worst of "
          f"{args.runs})")
    server = subprocess.Popen([sys.executable, "-m", "clipsearch", "serve", "--db", str(args.db)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    try:
        for line in server.stderr:
            if line.startswith("serving "):
                break
        options = QueryOptions(limit=10, filters=filters)
        times = []
        library = Library(args.db)
        before = server_info(DataDir(args.db))["answered"]
        for n in range(args.served):
            began = time.perf_counter()
            library.answer(QueryKind.text, [f"{TEXTS[n % len(TEXTS)]} {n}"], options)
            times.append(time.perf_counter() - began)
        assert server_info(DataDir(args.db))["answered"] == before + args.served, "the server should answer"
        times.sort()
        print(f"through serve: p50 {1000 * statistics.median(times):.1f} ms, p95 "
              f"{1000 * times[int(0.95 * (len(times) - 1))]:.1f} ms over {args.served} queries (target 50 ms)")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
