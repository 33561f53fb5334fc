"""What checking the whole vector index costs before it is loaded, next to what loading it costs.

    python bench/vector_search.py --n 1000000 --work /tmp/vs1m --ef 256      # builds a 1M-vector index once
    python bench/index_digest.py /tmp/vs1m/hnsw-M32-efc200.bin --dim 512

clipsearch hashes the whole HNSW file (xxh3-128 over a memory map, clipsearch.filesystem.fingerprint) and
compares it with the hash recorded at save time before hnswlib may read it: a damaged file is rebuilt,
never loaded. This prints, for the same file in one run, alternating: the hash (page cache warm), and a
fresh process loading the file with hnswlib as `clipsearch query` does. Medians of --runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from index_throughput import cpu_name  # noqa: E402

from clipsearch.filesystem import fingerprint  # noqa: E402

_LOAD = """
import sys, time, hnswlib
index = hnswlib.Index(space="ip", dim=int(sys.argv[2]))
began = time.perf_counter()
index.load_index(sys.argv[1])
print(time.perf_counter() - began)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index_file", type=Path)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = args.index_file.stat().st_size
    hashes, loads = [], []
    fingerprint(args.index_file)  # the page cache now holds the file, as it does for the queries after a first
    for _ in range(args.runs):
        began = time.perf_counter()
        fingerprint(args.index_file)
        hashes.append(time.perf_counter() - began)
        done = subprocess.run([sys.executable, "-c", _LOAD, str(args.index_file), str(args.dim)],
                              capture_output=True, text=True, check=True)
        loads.append(float(done.stdout.strip()))
    digest, load = statistics.median(hashes), statistics.median(loads)
    print(f"cpu: {cpu_name()}")
    print(f"file: {args.index_file} ({size / 1e9:.2f} GB)")
    print(f"whole-file xxh3-128 hash: {digest:.3f} s ({size / digest / 1e9:.1f} GB/s), median of {args.runs}")
    print(f"hnswlib load_index:       {load:.3f} s, median of {args.runs} fresh processes")
    print(f"hash / load = {digest / load:.2f}")


if __name__ == "__main__":
    main()
