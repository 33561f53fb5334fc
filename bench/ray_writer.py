"""The single writer's ceiling under `index --ray`: how many embedded files a second the driver can commit.

    python bench/ray_writer.py --n 100000 --json bench/results/ray-writer.json

Results arrive from the actors already embedded, so the driver's work per file is what this times, with the
driver's own code (clipsearch.indexing.pipeline._settled_by_lookup, BatchWriter.route and .commit): the
content-hash lookup in the catalogue (a second SQLite connection, as in a run), routing, and the transactions
that write the rows and vectors, at several rows per transaction (--rows, the run uses 1,024). Synthetic
CLIP-like 512-d vectors (bench/synthetic_vectors.py) and paths from bench/synthetic_catalog.py stand in for
the actors' results; making them is not timed. The HNSW index is not on the commit path (it is caught up from the
catalogue every minute and at the end): its catch-up rate is timed apart, as the rate a writer could keep it
current at.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from index_throughput import cpu_name  # noqa: E402
from synthetic_catalog import fake_files  # noqa: E402
from synthetic_vectors import ClipLikeVectors, Shape  # noqa: E402

from clipsearch.config import DataDir  # noqa: E402
from clipsearch.indexing.batches import Batch, BatchWriter  # noqa: E402
from clipsearch.indexing.crawl import FoundFile  # noqa: E402
from clipsearch.indexing.pipeline import _settled_by_lookup  # noqa: E402
from clipsearch.indexing.prepare import HashLookup, Prepared  # noqa: E402
from clipsearch.indexing.request import IndexStats, Reporter  # noqa: E402
from clipsearch.store.catalog import Catalog  # noqa: E402
from clipsearch.store.hnsw import VectorIndex  # noqa: E402

DIM = 512


def results(n: int, seed: int) -> list[Prepared]:
    vectors = ClipLikeVectors(seed, Shape.for_dim(DIM)).rows(0, n)
    prepared = []
    for file in fake_files("/synthetic/Pictures", 0, vectors, seed):
        found = FoundFile(file.path, file.size, file.mtime_ns, "/synthetic/Pictures")
        prepared.append(Prepared(found, file.hash, None, file.width, file.height, file.taken_at, file.camera_make,
                                 file.camera_model, vector=file.vector))
    return prepared


def write(prepared: list[Prepared], rows: int, work: Path) -> dict:
    data_dir = DataDir(work / f"db-{rows}")
    catalog = Catalog(data_dir.catalog, create=True)
    writer = BatchWriter(catalog, IndexStats(), Reporter(), staging=False, known_ids={})
    lookup = HashLookup(catalog.hash_reader(), {})
    began = time.perf_counter()
    batch = Batch()
    for item in prepared:
        writer.route(_settled_by_lookup(item, lookup), batch)
        if len(batch) >= rows:
            writer.commit(batch, lambda pixels: pixels)
            batch = Batch()
    writer.commit(batch, lambda pixels: pixels)
    seconds = time.perf_counter() - began
    lookup.close()
    began = time.perf_counter()
    index = VectorIndex(DIM, capacity=len(prepared))
    index.catch_up(catalog)
    hnsw_seconds = time.perf_counter() - began
    catalog.close()
    return {"rows_per_commit": rows, "files": len(prepared), "seconds": seconds,
            "files_per_s": len(prepared) / seconds, "hnsw_catch_up_files_per_s": len(prepared) / hnsw_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rows", default="128,1024,4096")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(f"cpu: {cpu_name()}")
    prepared = results(args.n, args.seed)
    work = Path(tempfile.mkdtemp(prefix="ray-writer-"))
    figures = {"cpu": cpu_name(), "n": args.n, "dim": DIM, "runs": []}
    try:
        for rows in (int(r) for r in args.rows.split(",")):
            run = write(prepared, rows, work)
            figures["runs"].append(run)
            print(f"{rows:>5} rows per transaction: {run['files_per_s']:,.0f} files/s committed (target 5,000); HNSW "
                  f"catch-up, off the commit path: {run['hnsw_catch_up_files_per_s']:,.0f} files/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
