"""Write a real clipsearch database of N fake photos with synthetic vectors, fast enough for millions.

    python bench/synthetic_catalog.py --n 100000 /tmp/cat100k                     # the tiny test model (128-d)
    python bench/synthetic_catalog.py --n 1000000 /tmp/cat1m --model ViT-B-32 \\
        --pretrained /tmp/vitb32-random.pt --make-checkpoint                     # 512-d, random weights
    python bench/synthetic_catalog.py --n 1000000 /tmp/cat1m --model ViT-B-32 \\
        --pretrained /tmp/vitb32-random.pt --index-from /tmp/vs1m                # adopt vector_search.py's index

The database is written through clipsearch's own API, as `clipsearch index` would leave it: a catalogue
(clipsearch.store.catalog.Catalog, its own files.add, in large transactions) holding N rows with plausible
paths in nested folders (camera JPEGs in YEAR/MONTH/, phone shots, screenshots, exports), sizes,
modification times, dimensions and capture times, and a vector each from bench/synthetic_vectors.py
(CLIP-like, the same generator and seed as bench/vector_search.py); the model identity the
pipeline would record; and the HNSW index built by clipsearch.store.hnsw.VectorIndex and saved with its
state, so that `clipsearch query`/`similar` find a trusted, current index and rebuild nothing.

Each path gets an empty placeholder file (bench/placeholders.py; --no-placeholders leaves them out),
since `query` and `similar` leave out results whose file is gone. `clipsearch similar PATH` with one of
the fake paths answers from the stored vector without decoding the file (or loading a model), which is
what the verification step runs:
`clipsearch status` (must say the index is current) and `clipsearch similar` under /usr/bin/time -v
for the peak RSS. Text queries need the model: with a random-weights checkpoint the ranking is
meaningless, but the time and memory are those of the real thing.

`--index-from DIR` adopts the index that `vector_search.py --work DIR` built with clipsearch's own
parameters over the same vectors (same --n, dimensions and --seed): its labels are row numbers + 1,
which are the catalogue's row ids here, so the 1M build need not be paid twice.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if (REPO / "clipsearch" / "__init__.py").is_file():
    sys.path.insert(0, str(REPO))  # use this checkout, even where another clipsearch is installed
sys.path.insert(0, str(BENCH))

from placeholders import make_placeholders  # noqa: E402
from synthetic_vectors import ClipLikeVectors, Shape  # noqa: E402

from clipsearch.config import DataDir  # noqa: E402
from clipsearch.models.identity import MODEL_SETTING, resolve_model  # noqa: E402
from clipsearch.store.catalog import Catalog  # noqa: E402
from clipsearch.store.hnsw import HNSW_EF_CONSTRUCTION, HNSW_M, VectorIndex  # noqa: E402
from clipsearch.store.rows import NewFile  # noqa: E402

TEST_CONFIG = REPO / "tests" / "model" / "clipsearch-test-tiny.json"
TEST_WEIGHTS = REPO / "tests" / "model" / "clipsearch-test-tiny.pt"
DEFAULT_ROOT = "/synthetic/Pictures"
FIRST_DAY = datetime(2008, 1, 1, tzinfo=timezone.utc).timestamp()
LAST_DAY = datetime(2025, 12, 31, tzinfo=timezone.utc).timestamp()

# (share, folder pattern, name pattern, size range in bytes, (width, height), has EXIF capture time, camera)
KINDS = (
    (0.80, "{y:04d}/{m:02d}", "IMG_{row:07d}.JPG", (2_900_000, 4_400_000), (4000, 3000), True,
     ("Canon", "Canon EOS 80D")),
    (0.08, "{y:04d}/phone", "PXL_{y:04d}{m:02d}{d:02d}_{H:02d}{M:02d}{S:02d}_{row:07d}.jpg",
     (2_000_000, 4_000_000), (3024, 4032), True, ("Google", "Pixel 7")),
    (0.06, "screenshots", "Screenshot {y:04d}-{m:02d}-{d:02d} at {H:02d}.{M:02d}.{S:02d} ({row}).png",
     (60_000, 1_300_000), (2560, 1600), False, (None, None)),
    (0.06, "exports/{y:04d}", "export_{row:07d}.webp", (700_000, 1_100_000), (2048, 1536), False, (None, None)),
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fake_files(root: str, start: int, vectors: np.ndarray, seed: int) -> list[NewFile]:
    """Rows start.. of the fake library, deterministic by seed: a path, stat and picture facts for each vector."""
    rng = np.random.default_rng([seed, 3, start])
    count = len(vectors)
    shares = np.cumsum([kind[0] for kind in KINDS])
    kinds = np.searchsorted(shares / shares[-1], rng.random(count), side="right")
    seconds = rng.uniform(FIRST_DAY, LAST_DAY, count)
    fractions = rng.random(count)
    files = []
    for i in range(count):
        row = start + i
        _, folder, name, (low, high), (width, height), exif, (make, model) = KINDS[kinds[i]]
        moment = datetime.fromtimestamp(float(seconds[i]), timezone.utc)
        fields = {"y": moment.year, "m": moment.month, "d": moment.day, "H": moment.hour, "M": moment.minute,
                  "S": moment.second, "row": row}
        path = f"{root}/{folder.format(**fields)}/{name.format(**fields)}"
        mtime_ns = int(seconds[i]) * 1_000_000_000 + row % 1000 * 1_000_000
        files.append(NewFile(
            path=path, size=int(low + fractions[i] * (high - low)), mtime_ns=mtime_ns,
            hash=hashlib.blake2b(f"synthetic {seed} {row}".encode(), digest_size=16).hexdigest(),
            width=width, height=height,
            taken_at=moment.replace(tzinfo=None).isoformat(timespec="seconds") if exif else None,
            vector=vectors[i], camera_make=make, camera_model=model,
        ))
    return files


def _checkpoint(model: str, pretrained: str, make: bool) -> None:
    path = Path(pretrained).expanduser()
    if path.exists() or not make:
        return
    _log(f"making a random-weights checkpoint of {model} at {path} (bench/index_throughput.py --make-checkpoint)...")
    began = time.perf_counter()
    completed = subprocess.run([sys.executable, str(BENCH / "index_throughput.py"), "--make-checkpoint", model,
                                str(path)], check=False)
    if completed.returncode != 0:
        raise SystemExit(f"synthetic_catalog: could not make {path}")
    _log(f"  {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - began:.1f} s")


def _adopt_index(work: Path, catalog: Catalog, dim: int, n: int, seed: int) -> tuple[VectorIndex, Path]:
    """The index vector_search.py built over these same vectors with clipsearch's parameters."""
    described = json.loads((work / "data.json").read_text())
    wanted = {"n": n, "dim": dim, "seed": seed, "kind": "clip-like", "shape": Shape.for_dim(dim).to_dict()}
    if described != wanted:
        raise SystemExit(f"synthetic_catalog: {work} holds other vectors ({described}), not {wanted}")
    path = work / f"hnsw-M{HNSW_M}-efc{HNSW_EF_CONSTRUCTION}.bin"
    if not path.is_file():
        raise SystemExit(f"synthetic_catalog: no {path.name} in {work}: run bench/vector_search.py --work {work} "
                         "with clipsearch's parameters first")
    # What VectorIndex.open does with a trusted file, minus the trust (this file has no state beside it yet).
    index = VectorIndex._load(path, dim, catalog.current_seq(), catalog)
    return index, path


def _check_rows(catalog: Catalog, index: VectorIndex, generator: ClipLikeVectors, n: int) -> None:
    """Row ids are 1..n in generator order, and searching the index for a row's vector finds that row."""
    low, high, count = catalog._db.conn.execute("SELECT min(id), max(id), count(*) FROM files").fetchone()
    if (low, high, count) != (1, n, n):
        raise SystemExit(f"synthetic_catalog: row ids run {low}..{high} over {count} rows, expected 1..{n}")
    for row in sorted({0, n // 2, n - 1}):
        expected = generator.rows(row, 1)[0]
        _, stored = next(catalog.files.vectors([row + 1]))
        hits = index.search(expected, 1)
        if not (np.array_equal(stored[0], expected) and hits and hits[0].id == row + 1 and hits[0].score > 0.999):
            raise SystemExit(f"synthetic_catalog: row {row + 1}'s vector differs between generator, catalogue "
                             "and index")


def _timed_cli(arguments: list[str]) -> dict:
    """Run `python -m clipsearch ...` from this checkout under /usr/bin/time -v: output, seconds, peak RSS."""
    command = [sys.executable, "-m", "clipsearch", *arguments]
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if timer:
        command = [timer, "-v", *command]
    environment = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    began = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=environment, check=False)
    seconds = time.perf_counter() - began
    peak_kib = None
    stderr_lines = []
    for line in completed.stderr.splitlines():
        if "Maximum resident set size (kbytes):" in line:
            peak_kib = int(line.rsplit(":", 1)[1])
        elif not line.startswith("\t"):
            stderr_lines.append(line)
    return {"command": " ".join(["python", "-m", "clipsearch", *arguments]), "exit": completed.returncode,
            "seconds": seconds, "peak_rss_mb": peak_kib / 1024 if peak_kib else None,
            "stdout": completed.stdout, "stderr": "\n".join(stderr_lines)}


def _verify(db: Path, path: str, limit: int) -> dict:
    status = _timed_cli(["status", "--db", str(db), "--json"])
    state = json.loads(status["stdout"])["index"] if status["exit"] == 0 else None
    similar = _timed_cli(["similar", path, "--db", str(db), "-n", str(limit), "-f", "json"])
    results = json.loads(similar["stdout"]) if similar["exit"] == 0 else []
    return {"status": status, "index_state": state, "similar": similar, "similar_results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path, metavar="DB_DIR", help="database folder to create")
    parser.add_argument("--n", type=int, required=True, help="fake photos")
    parser.add_argument("--model", metavar="NAME|CONFIG.json",
                        help="open_clip model or config (default: the test model, tests/model/)")
    parser.add_argument("--pretrained", metavar="PATH|TAG", help="its checkpoint (default: the test model's)")
    parser.add_argument("--make-checkpoint", action="store_true",
                        help="if --pretrained names no file, save random weights for --model there first")
    parser.add_argument("--seed", type=int, default=0, help="vectors and files (default 0, as vector_search.py)")
    parser.add_argument("--root", default=DEFAULT_ROOT, help=f"folder the fake paths live under ({DEFAULT_ROOT})")
    parser.add_argument("--batch", type=int, default=50_000, help="rows per transaction (default 50000)")
    parser.add_argument("--index-from", type=Path, metavar="DIR",
                        help="adopt the index vector_search.py --work DIR built over the same vectors")
    parser.add_argument("--force", action="store_true", help="replace a database already in DB_DIR")
    parser.add_argument("--no-placeholders", action="store_true",
                        help="do not create an empty file at each fake path (searches then find nothing)")
    parser.add_argument("--no-verify", action="store_true", help="skip running `clipsearch status` and `similar`")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.n < 2 or args.batch < 1:
        parser.error("need --n >= 2 and --batch >= 1")
    hf = (args.model or "").startswith("hf:")  # a transformers model: its folder or repository is all it needs
    if not hf and (args.model is None) != (args.pretrained is None):
        parser.error("give --model and --pretrained together (or neither, for the test model)")
    model = args.model or str(TEST_CONFIG)
    pretrained = args.pretrained if hf else args.pretrained or str(TEST_WEIGHTS)
    root = args.root.rstrip("/") or "/"
    data_dir = DataDir(args.db.expanduser().absolute())
    if data_dir.catalog.exists():
        if not args.force:
            raise SystemExit(f"synthetic_catalog: {data_dir.catalog} exists (pass --force to replace it)")
        for leftover in data_dir.root.glob("catalog.db*"):
            leftover.unlink()
        for leftover in data_dir.root.glob("vectors.*"):
            leftover.unlink()
    if not hf:
        _checkpoint(model, pretrained, args.make_checkpoint)

    figures: dict = {"n": args.n, "db": str(data_dir.root), "seed": args.seed}
    began = time.perf_counter()
    catalog = Catalog(data_dir.catalog, create=True)
    try:
        catalog.settings.set("catalog_id", uuid.uuid4().hex)
        mark = time.perf_counter()
        identity = resolve_model(catalog, model, pretrained).identity  # as `index` does: hashes a checkpoint file
        figures["model_identity_s"] = time.perf_counter() - mark
        figures["model"] = identity.describe()
        with catalog.transaction():
            catalog.settings.set_json(MODEL_SETTING, identity.to_dict())
        _log(f"model {identity.describe()}, {identity.dim} dimensions (identified in "
             f"{figures['model_identity_s']:.1f} s)")

        generator = ClipLikeVectors(args.seed, Shape.for_dim(identity.dim))
        mark = time.perf_counter()
        generate_s = placeholders_s = 0.0
        for start in range(0, args.n, args.batch):
            step = time.perf_counter()
            vectors = generator.rows(start, min(args.batch, args.n - start))
            files = fake_files(root, start, vectors, args.seed)
            generate_s += time.perf_counter() - step
            if not args.no_placeholders:  # not part of writing the catalogue: timed apart, and left out of it
                step = time.perf_counter()
                make_placeholders(file.path for file in files)
                placeholders_s += time.perf_counter() - step
            with catalog.transaction():
                catalog.files.add(files, catalog.next_seq())
            done = start + len(files)
            _log(f"  catalogue: {done:,}/{args.n:,} rows, "
                 f"{done / (time.perf_counter() - mark - placeholders_s):,.0f} rows/s")
        with catalog.transaction():
            catalog.roots.record({root: {}})
        figures["catalogue_s"] = time.perf_counter() - mark - placeholders_s
        figures["placeholders_s"] = placeholders_s
        figures["catalogue_generate_s"] = generate_s
        figures["catalogue_rows_per_s"] = args.n / figures["catalogue_s"]
        catalog._db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave one file, as after a finished `index`

        mark = time.perf_counter()
        if args.index_from is not None:
            index, source = _adopt_index(args.index_from.expanduser().resolve(), catalog, identity.dim, args.n,
                                         args.seed)
            figures["index"] = f"adopted {source}"
        else:
            _log(f"building the HNSW index with VectorIndex.build (M={HNSW_M}, ef_construction="
                 f"{HNSW_EF_CONSTRUCTION}), as a query process would on a missing index...")
            index = VectorIndex.build(catalog, identity.dim)
            figures["index"] = "built by VectorIndex.build"
        figures["index_s"] = time.perf_counter() - mark
        _check_rows(catalog, index, generator, args.n)
        mark = time.perf_counter()
        index.save(data_dir, catalog.settings.get("catalog_id") or "")
        figures["index_save_s"] = time.perf_counter() - mark
        probe_path = catalog._db.conn.execute("SELECT path FROM files WHERE id = ?", (args.n // 2 + 1,)).fetchone()[0]
        probe_path = os.fsdecode(probe_path)
        del index
    finally:
        with contextlib.suppress(Exception):
            catalog.close()
    figures["total_s"] = time.perf_counter() - began
    figures["catalog_bytes"] = data_dir.catalog.stat().st_size
    figures["index_bytes"] = data_dir.hnsw.stat().st_size
    figures["probe_path"] = probe_path

    print(f"{args.n:,} fake photos in {data_dir.root} ({figures['model']}):")
    print(f"  catalogue written in {figures['catalogue_s']:.1f} s ({figures['catalogue_rows_per_s']:,.0f} rows/s, of "
          f"which {figures['catalogue_generate_s']:.1f} s making vectors and rows), "
          f"{figures['catalog_bytes'] / 1e6:,.0f} MB")
    print(f"  HNSW index {figures['index']} in {figures['index_s']:.1f} s, saved in {figures['index_save_s']:.1f} s, "
          f"{figures['index_bytes'] / 1e6:,.0f} MB")
    print(f"  total {figures['total_s']:.1f} s")
    if not args.no_verify:
        checks = _verify(data_dir.root, probe_path, 5)
        figures["verify"] = checks
        for name in ("status", "similar"):
            run = checks[name]
            rss = f"{run['peak_rss_mb']:,.0f} MB" if run["peak_rss_mb"] else "unknown (no /usr/bin/time)"
            print(f"  `{run['command']}`: exit {run['exit']}, {run['seconds']:.2f} s, peak RSS {rss}")
            if run["exit"] != 0:
                print("    " + run["stderr"].strip().replace("\n", "\n    "))
        print(f"  index state: {checks['index_state']}")
        for result in checks["similar_results"]:
            print(f"    {result['rank']:>2} {result['score']:.4f} {result['path']}")
        state = checks["index_state"]
        current = (state.get("state") if isinstance(state, dict) else str(state)) == "current"
        ok = (checks["status"]["exit"] == 0 and current
              and checks["similar"]["exit"] == 0 and len(checks["similar_results"]) == 5)
        figures["verified"] = ok
        print("  verified: the index is current and `similar` answers from the stored vector" if ok
              else "  VERIFICATION FAILED")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures.get("verified", True) else 1


if __name__ == "__main__":
    sys.exit(main())
