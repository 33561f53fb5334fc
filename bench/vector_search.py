"""Measure HNSW vector search alone: build time, index size and memory, recall@k and single-query latency.

    python bench/vector_search.py --n 50000                                  # clipsearch's own HNSW parameters
    python bench/vector_search.py --n 1000000 --work /tmp/vs1m               # build once, reuse on later runs
    python bench/vector_search.py --n 1000000 --work /tmp/vs1m --m 16,32 --ef-construction 100,200 --ef 32,64,128

The data are synthetic vectors shaped like CLIP image embeddings (bench/synthetic_vectors.py): a narrow
cone, a low-rank subspace, skewed clusters with a low local dimension, all L2-normalised; the queries
are fresh points from the same generator; `--query-noise S` pushes them off the data (lower-contrast,
text-like queries). `--isotropic` uses gaussian noise instead of CLIP-like vectors, for comparison.

For each (M, ef_construction) it builds an hnswlib 'ip' index as clipsearch does (labels are the row
number + 1, as clipsearch labels vectors by catalogue row id), using every core for `add_items`, and
reports the build rate, the index file's size, and the peak RSS of a fresh process that loads the file
and answers one query. Then for each ef: recall@k against exact search (numpy brute force), and the
latency of single queries, one at a time on one thread (`knn_query(..., num_threads=1)`, as
`clipsearch query` does), as p50/p95/p99 over all queries after a short warm-up. Targets (issue
"Speed", section 3): p50 <= 5 ms and recall@10 >= 0.95 over 1M vectors.

With `--work DIR` the vectors (a .npy file), the exact answers and each index built are kept in DIR
and reused by later runs with the same --n/--dim/--seed (a DIR made for other data is refused).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import hnswlib
import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if (REPO / "clipsearch" / "__init__.py").is_file():
    sys.path.insert(0, str(REPO))  # measure this checkout, even where another clipsearch is installed
sys.path.insert(0, str(BENCH))

from synthetic_vectors import ClipLikeVectors, Shape, exact_top_k, profile  # noqa: E402

from clipsearch.store.hnsw import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M  # noqa: E402

TARGET_P50_MS = 5.0
TARGET_RECALL = 0.95
LABEL_OFFSET = 1  # clipsearch's labels are catalogue row ids, which start at 1
ADD_CHUNK = 65536
WARMUP_QUERIES = 20

# Run in a fresh interpreter: what a query process pays to hold the index (hnswlib allocates it all on load).
# Peak RSS is read from /proc (VmHWM), not from getrusage: a child's ru_maxrss starts at its parent's RSS.
_LOAD_PROBE = """
import json, sys, time
import numpy as np, hnswlib

def status(key):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(key + ":"))

before = status("VmRSS")
index = hnswlib.Index(space="ip", dim=int(sys.argv[2]))
began = time.perf_counter()
index.load_index(sys.argv[1])
loaded = time.perf_counter() - began
index.set_ef(int(sys.argv[3]))
query = np.load(sys.argv[4])[:1]
began = time.perf_counter()
index.knn_query(query, k=10, num_threads=1)
first = time.perf_counter() - began
print(json.dumps({"rss_before_kib": before, "rss_peak_kib": status("VmHWM"), "load_s": loaded,
                  "first_query_s": first}))
"""


@dataclass(frozen=True)
class Built:
    m: int
    ef_construction: int
    path: Path
    build_s: float
    threads: int
    reused: bool


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers: {text!r}")
    return values


# ---------------------------------------------------------------------------------------------------------------
# Data: generated, or reused from the work folder.


def _describe_data(args: argparse.Namespace) -> dict:
    kind = "isotropic" if args.isotropic else "clip-like"
    return {"n": args.n, "dim": args.dim, "seed": args.seed, "kind": kind,
            "shape": Shape.for_dim(args.dim).to_dict() if kind == "clip-like" else None}


def _isotropic(n: int, dim: int, seed: int, stream: int, out: np.ndarray | None = None) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32) if out is None else out
    for start in range(0, n, ADD_CHUNK):
        rng = np.random.default_rng([seed, stream, start // ADD_CHUNK])
        block = rng.standard_normal((min(ADD_CHUNK, n - start), dim), dtype=np.float32)
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _off_manifold(queries: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Queries pushed off the data's manifold by isotropic noise of length `noise` (a unit query stays at a
    cosine of 1/sqrt(1 + noise**2) to where it was), then renormalised: lower-contrast queries, like a
    CLIP text query, whose best matches score about 0.3 where an image's nearest neighbours score 0.9."""
    rng = np.random.default_rng([seed, 4])
    pushed = queries + np.float32(noise / np.sqrt(queries.shape[1])) * rng.standard_normal(queries.shape,
                                                                                           dtype=np.float32)
    return pushed / np.linalg.norm(pushed, axis=1, keepdims=True)


def _data(args: argparse.Namespace, work: Path | None) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """(vectors, queries, seconds to make or open them, reused)."""
    description = _describe_data(args)
    began = time.perf_counter()
    generator = None if args.isotropic else ClipLikeVectors(args.seed, Shape.for_dim(args.dim))
    queries = (_isotropic(args.queries, args.dim, args.seed, 2) if generator is None
               else generator.queries(args.queries))
    if args.query_noise:
        queries = _off_manifold(queries, args.query_noise, args.seed)
    if work is not None:
        meta, path = work / "data.json", work / "vectors.npy"
        if meta.is_file() and path.is_file():
            if json.loads(meta.read_text()) != description:
                raise SystemExit(f"vector_search: {work} holds other data ({meta.read_text().strip()}): "
                                 "use another --work folder")
            return np.load(path, mmap_mode="r"), queries, time.perf_counter() - began, True
        work.mkdir(parents=True, exist_ok=True)
        vectors = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32,
                                            shape=(args.n, args.dim))
    else:
        vectors = np.empty((args.n, args.dim), dtype=np.float32)
    _log(f"generating {args.n:,} {description['kind']} vectors of {args.dim} dimensions...")
    if generator is None:
        _isotropic(args.n, args.dim, args.seed, 1, out=vectors)
    else:
        generator.fill(args.n, out=vectors)
    if work is not None:
        vectors.flush()
        del vectors
        os.replace(work / "vectors.tmp.npy", work / "vectors.npy")
        (work / "data.json").write_text(json.dumps(description))
        vectors = np.load(work / "vectors.npy", mmap_mode="r")
    return vectors, queries, time.perf_counter() - began, False


def _truth(vectors: np.ndarray, queries: np.ndarray, k: int, noise: float,
           work: Path | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact top-k ids and scores for the queries, and the seconds the brute force took (0 if cached)."""
    name = f"truth-q{len(queries)}-k{k}" + (f"-noise{noise:g}" if noise else "") + ".npz"
    cache = work / name if work is not None else None
    if cache is not None and cache.is_file():
        saved = np.load(cache)
        return saved["ids"], saved["scores"], 0.0
    _log(f"exact search for {len(queries)} queries over {len(vectors):,} vectors...")
    began = time.perf_counter()
    ids, scores = exact_top_k(vectors, queries, k)
    seconds = time.perf_counter() - began
    if cache is not None:
        np.savez(cache, ids=ids, scores=scores)
    return ids, scores, seconds


# ---------------------------------------------------------------------------------------------------------------
# Index: build, or reuse from the work folder.


def _build(vectors: np.ndarray, m: int, ef_construction: int, threads: int, folder: Path, reuse: bool) -> Built:
    path = folder / f"hnsw-M{m}-efc{ef_construction}.bin"
    meta = path.with_suffix(".json")
    if reuse and path.is_file() and meta.is_file():
        saved = json.loads(meta.read_text())
        return Built(m, ef_construction, path, saved["build_s"], saved["threads"], True)
    n, dim = vectors.shape
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, ef_construction=ef_construction, M=m, random_seed=100)
    _log(f"building M={m} ef_construction={ef_construction} over {n:,} vectors on {threads} threads...")
    began = time.perf_counter()
    for start in range(0, n, ADD_CHUNK):
        chunk = np.ascontiguousarray(vectors[start:start + ADD_CHUNK], dtype=np.float32)
        labels = np.arange(start, start + len(chunk), dtype=np.int64) + LABEL_OFFSET
        index.add_items(chunk, labels, num_threads=threads)
        done = start + len(chunk)
        elapsed = time.perf_counter() - began
        _log(f"  {done:,}/{n:,} in {elapsed:.0f} s ({done / elapsed:,.0f} vectors/s)")
    build_s = time.perf_counter() - began
    index.save_index(str(path))
    meta.write_text(json.dumps({"build_s": build_s, "threads": threads, "n": n, "dim": dim,
                                "m": m, "ef_construction": ef_construction}))
    return Built(m, ef_construction, path, build_s, threads, False)


def _load_probe(path: Path, dim: int, ef: int, queries: np.ndarray, folder: Path) -> dict:
    query_file = folder / "probe-query.npy"
    np.save(query_file, queries[:1])
    completed = subprocess.run([sys.executable, "-c", _LOAD_PROBE, str(path), str(dim), str(ef), str(query_file)],
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"vector_search: loading {path} in a fresh process failed:\n{completed.stderr}")
    return json.loads(completed.stdout)


# ---------------------------------------------------------------------------------------------------------------
# Measurements.


def _measure(index: hnswlib.Index, queries: np.ndarray, truth: np.ndarray, ef: int, k: int) -> dict:
    index.set_ef(ef)
    for query in queries[:WARMUP_QUERIES]:
        index.knn_query(query[None], k=k, num_threads=1)
    times = np.empty(len(queries))
    found = np.empty((len(queries), k), dtype=np.int64)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(len(queries)):
            query = queries[i:i + 1]
            began = time.perf_counter()
            labels, _ = index.knn_query(query, k=k, num_threads=1)
            times[i] = time.perf_counter() - began
            found[i] = labels[0]
    finally:
        if gc_was_enabled:
            gc.enable()
    found -= LABEL_OFFSET
    hits = [len(np.intersect1d(found[i], truth[i], assume_unique=True)) for i in range(len(queries))]
    recall = float(np.mean(hits)) / k
    ms = times * 1000.0
    return {
        "ef": ef, "recall": recall, "recall_min": min(hits) / k,
        "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "max_ms": float(ms.max()),
        "qps_one_thread": float(len(ms) / times.sum()),
        "p50_vs_target": float(np.percentile(ms, 50)) / TARGET_P50_MS,
        "recall_vs_target": recall / TARGET_RECALL,
        "meets_targets": bool(recall >= TARGET_RECALL and np.percentile(ms, 50) <= TARGET_P50_MS),
    }


def _hnswlib_bytes_per_vector(dim: int, m: int) -> float:
    """What hnswlib keeps per vector in memory: level-0 links, the vector, the label, the upper levels on
    average (1/M of the vectors reach level 1 and above), and the bookkeeping beside them."""
    level0 = 4 + 2 * m * 4 + 4 * dim + 8
    upper = (4 + m * 4) / (m - 1)
    bookkeeping = 40 + 8 + 4 + 48  # per-element mutex, link-list pointer, level, label map entry (approx.)
    return level0 + upper + bookkeeping


def _run(args: argparse.Namespace) -> dict:
    work = args.work.expanduser().resolve() if args.work else None
    load_before = os.getloadavg()
    vectors, queries, data_s, data_reused = _data(args, work)
    truth, truth_scores, truth_s = _truth(vectors, queries, args.k, args.query_noise, work)
    data_profile = profile(vectors, queries, truth_scores, seed=args.seed)
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "loadavg_start": load_before, "hnswlib": getattr(hnswlib, "__version__", None)},
        "data": {**_describe_data(args), "queries": args.queries, "query_noise": args.query_noise, "k": args.k,
                 "seconds": data_s,
                 "reused": data_reused, "profile": data_profile, "exact_search_s": truth_s},
        "clipsearch_defaults": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef": HNSW_EF_SEARCH},
        "targets": {"p50_ms": TARGET_P50_MS, "recall": TARGET_RECALL},
        "indexes": [],
    }
    with tempfile.TemporaryDirectory(prefix="vector-search-") as temporary:
        folder = work if work is not None else Path(temporary)
        for m in args.m:
            for ef_construction in args.ef_construction:
                built = _build(vectors, m, ef_construction, args.threads, folder, reuse=work is not None)
                size = built.path.stat().st_size
                probe = _load_probe(built.path, args.dim, HNSW_EF_SEARCH, queries, folder)
                index = hnswlib.Index(space="ip", dim=args.dim)
                index.load_index(str(built.path))
                rows = [_measure(index, queries, truth, ef, args.k) for ef in args.ef]
                del index
                results["indexes"].append({
                    "m": m, "ef_construction": ef_construction, "build_s": built.build_s,
                    "build_threads": built.threads, "build_reused": built.reused,
                    "vectors_per_s": args.n / built.build_s, "file_bytes": size, "file_bytes_per_vector": size / args.n,
                    "memory_bytes_per_vector_estimate": _hnswlib_bytes_per_vector(args.dim, m),
                    "load": {"rss_before_mb": probe["rss_before_kib"] / 1024,
                             "rss_peak_mb": probe["rss_peak_kib"] / 1024,
                             "rss_added_bytes_per_vector":
                                 (probe["rss_peak_kib"] - probe["rss_before_kib"]) * 1024 / args.n,
                             "load_s": probe["load_s"], "first_query_ms": probe["first_query_s"] * 1000},
                    "searches": rows,
                })
    results["machine"]["loadavg_end"] = os.getloadavg()
    return results


# ---------------------------------------------------------------------------------------------------------------
# Report.


def _report(results: dict) -> None:
    data, machine = results["data"], results["machine"]
    shape = data["profile"]
    kth = shape[f"query_top{data['k']}_cosine_mean"]
    print(f"vector search over {data['n']:,} {data['kind']} vectors of {data['dim']} dimensions (seed {data['seed']}), "
          f"{data['queries']} fresh queries" + (f" pushed off the data by noise {data['query_noise']:g}"
                                                 if data["query_noise"] else "")
          + f", recall@{data['k']} against exact search")
    print(f"  data: random pairs cosine {shape['random_pair_cosine_mean']:.2f} "
          f"(5-95%: {shape['random_pair_cosine_p5_p95'][0]:.2f}-{shape['random_pair_cosine_p5_p95'][1]:.2f}); "
          f"queries' nearest {shape['query_top1_cosine_mean']:.3f}, {data['k']}th nearest "
          f"{kth:.3f}; local intrinsic dimension around the queries "
          f"{shape['local_intrinsic_dim_mle']:.1f}")
    made = "reused from the work folder" if data["reused"] else "generated"
    print(f"  vectors {made} in {data['seconds']:.1f} s; exact search "
          + (f"{data['exact_search_s']:.1f} s" if data["exact_search_s"] else "reused"))
    print(f"  machine: {machine['cpus']} CPUs, {machine['processor'] or machine['platform']}; load average "
          f"{machine['loadavg_start'][0]:.2f} at start, {machine['loadavg_end'][0]:.2f} at end")
    defaults = results["clipsearch_defaults"]
    print(f"  clipsearch's parameters: M={defaults['m']}, ef_construction={defaults['ef_construction']}, "
          f"ef={defaults['ef']} (search uses ef=max({defaults['ef']}, k))")
    print()
    for entry in results["indexes"]:
        load = entry["load"]
        reused = ", reused" if entry["build_reused"] else ""
        print(f"M={entry['m']} ef_construction={entry['ef_construction']}: built in {entry['build_s']:.0f} s on "
              f"{entry['build_threads']} threads ({entry['vectors_per_s']:,.0f} vectors/s{reused}); file "
              f"{entry['file_bytes'] / 1e6:,.0f} MB ({entry['file_bytes_per_vector']:.0f} B/vector); a fresh "
              f"process that loads it: {load['load_s']:.1f} s, peak RSS {load['rss_peak_mb']:,.0f} MB "
              f"(+{load['rss_added_bytes_per_vector']:.0f} B/vector), first query {load['first_query_ms']:.2f} ms")
        print(f"  {'ef':>5} {'recall':>7} {'worst':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} "
              f"{'q/s':>7}  {'p50/5ms':>7} {'rec/0.95':>8}  targets")
        for row in entry["searches"]:
            mark = " (clipsearch)" if row["ef"] == defaults["ef"] else ""
            print(f"  {row['ef']:>5} {row['recall']:>7.4f} {row['recall_min']:>6.1f} {row['p50_ms']:>7.3f} "
                  f"{row['p95_ms']:>7.3f} {row['p99_ms']:>7.3f} {row['max_ms']:>7.2f} {row['qps_one_thread']:>7.0f}  "
                  f"{row['p50_vs_target']:>7.2f} {row['recall_vs_target']:>8.3f}  "
                  f"{'met' if row['meets_targets'] else 'MISSED'}{mark}")
        passing = [row for row in entry["searches"] if row["meets_targets"]]
        if passing:
            best = min(passing, key=lambda row: row["ef"])
            print(f"  smallest ef meeting both targets: {best['ef']} (recall {best['recall']:.4f}, p50 "
                  f"{best['p50_ms']:.2f} ms)")
        else:
            print("  no ef tried meets both targets")
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, required=True, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=512, help="dimensions (default 512, as ViT-B-32)")
    parser.add_argument("--queries", type=int, default=1000, help="queries (default 1000)")
    parser.add_argument("--k", type=int, default=10, help="results per query (default 10: recall@10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--m", type=_int_list, default=[HNSW_M], metavar="M[,M...]",
                        help=f"HNSW M values (default clipsearch's, {HNSW_M})")
    parser.add_argument("--ef-construction", type=_int_list, default=[HNSW_EF_CONSTRUCTION], metavar="EF[,EF...]",
                        help=f"HNSW ef_construction values (default clipsearch's, {HNSW_EF_CONSTRUCTION})")
    parser.add_argument("--ef", type=_int_list, default=sorted({16, 32, 64, 128, 256, HNSW_EF_SEARCH}),
                        metavar="EF[,EF...]", help="search ef values (default 16,32,64,128,256)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for building (default: every core)")
    parser.add_argument("--work", type=Path, metavar="DIR",
                        help="keep the vectors, exact answers and indexes here, and reuse them on later runs")
    parser.add_argument("--query-noise", type=float, default=0.0, metavar="S",
                        help="push each query off the data by isotropic noise of length S (e.g. 2: text-like "
                             "queries whose best match scores about 0.4); default 0")
    parser.add_argument("--isotropic", action="store_true", help="gaussian noise instead of CLIP-like vectors")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="also write every figure as JSON to PATH (to stdout, instead of the table, without PATH)")
    args = parser.parse_args(argv)
    if args.n < args.k or args.queries < 1 or args.query_noise < 0 or args.k < 1 or args.dim < 2 or args.threads < 1:
        parser.error("need --n >= --k >= 1, --queries >= 1, --dim >= 2, --threads >= 1")
    if any(ef < args.k for ef in args.ef):
        parser.error("every --ef must be at least --k (hnswlib searches with max(ef, k) anyway)")
    results = _run(args)
    if args.json == "-":
        print(json.dumps(results, indent=2))
        return 0
    _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
