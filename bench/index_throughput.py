"""Measure `clipsearch index` throughput against what its two halves can do alone.

    python bench/index_throughput.py CORPUS --random-weights            # ViT-B-32, random weights, no download
    python bench/index_throughput.py CORPUS --test-model --limit 50     # the tiny test model
    python bench/index_throughput.py CORPUS --model ViT-B-32 --pretrained laion2b_s34b_b79k --rerun

In one run, on the same files, model, device, batch size and worker count, it measures:

  end-to-end     the real indexing pipeline (clipsearch.indexing.pipeline.index_paths) into a fresh temporary
                 database, in a child process of its own (so its peak RSS is its own): images/s with
                 and without the model load (and, for a checkpoint file, the SHA-256 of it that the
                 pipeline takes to identify the model), which are timed inside the run;
  model-only     Encoder.embed_pixels on ready uint8 batches of random pixels at the model's input
                 size, after warm-up: the ceiling if decoding cost nothing;
  decode-only    read_file + decode_image(target_size) + prepare_pixels over the same files in the same
                 number of threads: the ceiling if the model cost nothing;
  re-index       with --rerun, a second index of the unchanged tree into the same database, which
                 should read and decode nothing.

and prints end-to-end as a share of the slower ceiling. It uses the clipsearch next to it (this
checkout), not an installed one. Files are read once before anything is timed, so every figure
sees the same (warm) page cache.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if (REPO / "clipsearch" / "__init__.py").is_file():
    sys.path.insert(0, str(REPO))  # measure this checkout, even where another clipsearch is installed

import numpy as np  # noqa: E402

from clipsearch.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, DataDir  # noqa: E402
from clipsearch.errors import ImageError  # noqa: E402
from clipsearch.imaging.decode import decode_image, read_file  # noqa: E402
from clipsearch.imaging.pixels import prepare_pixels  # noqa: E402
from clipsearch.indexing.crawl import crawl  # noqa: E402
from clipsearch.models.device import Device, Engine, Precision  # noqa: E402
from clipsearch.models.identity import ModelSpec, default_pretrained, identify  # noqa: E402
from clipsearch.models.openvino import synthetic_probes  # noqa: E402
from clipsearch.models.runtime import Encoder, load_indexing_encoder  # noqa: E402

TEST_CONFIG = REPO / "tests" / "model" / "clipsearch-test-tiny.json"
TEST_WEIGHTS = REPO / "tests" / "model" / "clipsearch-test-tiny.pt"
MAX_MEGAPIXELS = 200.0  # clipsearch's default


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


class _Said(logging.Handler):
    """The lines clipsearch's logger says while it is attached (e.g. "embedding with OpenVINO ...")."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


# ---------------------------------------------------------------------------------------------------------------
# The end-to-end run, in a child process: `index_throughput.py --child SPEC.json`.


def _child(spec_path: str) -> int:
    """Run index_paths as the CLI would, timing the model load and counting reads and decodes from inside.

    The pipeline modules import these names into their own namespaces, so wrapping them there instruments the
    run without changing it: load_encoder (the model load, in whichever decode thread needs it first),
    resolve_model (which hashes a checkpoint file), read_file and decode_image (counted).
    """
    from clipsearch.indexing import pipeline, prepare, request

    spec = json.loads(Path(spec_path).read_text())
    lock = threading.Lock()
    probe = {"load_s": 0.0, "import_s": 0.0, "loads": 0, "resolve_s": 0.0, "reads": 0, "decodes": 0, "skipped": 0,
             "started_at": None, "last_batch_at": None, "batch_size": None}

    base_load = pipeline.Indexer._load_encoder

    def timed_load(self):
        if spec["engine"] == "torch":
            probe["import_s"] += _import_torch()  # the first load imports them: timed apart from the load
        began = time.perf_counter()
        encoder = base_load(self)  # the engine's load or conversion, its check, and the query model
        with lock:
            probe["load_s"] += time.perf_counter() - began
            probe["loads"] += 1
            probe["device"] = getattr(encoder, "device", "cpu")
            probe["batch_size"] = spec["batch_size"] or encoder.default_batch_size
        return encoder

    def timed(name: str, function):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with lock:
                    probe[name] += time.perf_counter() - began

        return wrapper

    def counted(name: str, function):
        def wrapper(*args, **kwargs):
            with lock:
                probe[name] += 1
            return function(*args, **kwargs)

        return wrapper

    pipeline.Indexer._load_encoder = timed_load
    pipeline.resolve_model = timed("resolve_s", pipeline.resolve_model)
    prepare.read_file = counted("reads", prepare.read_file)
    prepare.decode_image = counted("decodes", prepare.decode_image)

    def skipped(path: str, reason: str) -> None:
        probe["skipped"] += 1
        print(f"  [index] skipped {path}: {reason}", file=sys.stderr)

    def advanced(count: int) -> None:
        probe["last_batch_at"] = time.perf_counter()

    def started(total: int) -> None:
        probe["started_at"] = time.perf_counter()
        probe["work"] = total

    said = logging.StreamHandler(sys.stderr)  # what the run says (clipsearch's logger), as the CLI would
    said.setFormatter(logging.Formatter("  [index] %(message)s"))
    logging.getLogger("clipsearch").addHandler(said)
    logging.getLogger("clipsearch").setLevel(logging.INFO)
    reporter = request.Reporter(skipped=skipped, started=started, advanced=advanced)
    options = request.IndexOptions(roots=tuple(spec["roots"]), model=spec["model"], pretrained=spec["pretrained"],
                                   device=Device(spec["device"]), precision=Precision(spec["precision"]),
                                   batch_size=spec["batch_size"], workers=spec["workers"],
                                   engine=Engine(spec["engine"]))
    began = time.perf_counter()
    stats = pipeline.index_paths(DataDir(Path(spec["db"])), options, reporter)
    ended = time.perf_counter()

    result = {key: getattr(stats, key) for key in ("indexed", "unchanged", "moved", "removed", "skipped",
                                                    "seconds", "interrupted", "model")}
    result.update(load_s=probe["load_s"], import_s=probe["import_s"], model_loads=probe["loads"],
                  resolve_s=probe["resolve_s"],
                  files_read=probe["reads"], images_decoded=probe["decodes"], work=probe.get("work", 0),
                  batch_size=probe["batch_size"], device=probe.get("device"), peak_rss_bytes=_peak_rss_bytes(),
                  wall_in_process_s=ended - began)
    # Phases: setup (lock, catalogue, model identity, crawl), processing (decode + embed + commit), finish
    # (final HNSW save). Processing includes the model load, which happens inside it.
    if probe["started_at"] is not None:
        result["setup_s"] = probe["started_at"] - began
        last = probe["last_batch_at"] or probe["started_at"]
        result["processing_s"] = last - probe["started_at"]
        result["finish_s"] = ended - last
    torch = sys.modules.get("torch")
    if torch is not None and probe.get("device") == "cuda":
        result["cuda_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


def _import_torch() -> float:
    """Import torch and open_clip if not done yet (open_clip with a quiet root logger, as clipsearch does)."""
    if "open_clip" in sys.modules:
        return 0.0
    began = time.perf_counter()
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    try:
        import open_clip  # noqa: F401
        import torch  # noqa: F401
    finally:
        root.removeHandler(handler)
    return time.perf_counter() - began


def _run_child(spec: dict, work: Path, name: str) -> dict:
    spec = {**spec, "result": str(work / f"{name}.result.json")}
    spec_path = work / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    began = time.perf_counter()
    completed = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
                               check=False)
    wall = time.perf_counter() - began
    if completed.returncode != 0:
        raise SystemExit(f"index_throughput: the {name} index run failed (exit {completed.returncode})")
    result = json.loads(Path(spec["result"]).read_text())
    result["process_wall_s"] = wall  # Python start-up and imports included
    return result


# ---------------------------------------------------------------------------------------------------------------
# Model and files.


def _make_checkpoint(model: str, path: str) -> int:
    """`--make-checkpoint MODEL PATH`: save open_clip's random initialisation of MODEL (a child process, so the
    benchmark's own peak RSS is not that of building a model it then throws away)."""
    _import_torch()
    import open_clip
    import torch

    name = model
    if model.endswith(".json"):
        config = Path(model).expanduser().resolve()
        open_clip.add_model_config(str(config))
        name = config.stem
    torch.manual_seed(0)
    root = logging.getLogger()
    handler = logging.NullHandler()  # open_clip warns through the root logger that the weights are random
    root.addHandler(handler)
    try:
        network = open_clip.create_model(name, pretrained=None)
    finally:
        root.removeHandler(handler)
    torch.save(network.state_dict(), path)
    return 0


def _random_checkpoint(model: str, work: Path) -> tuple[str, float]:
    """A checkpoint file of random weights for `model`, which clipsearch loads like any local checkpoint."""
    path = work / f"{ModelSpec(model, None).architecture}-random-weights.pt"
    began = time.perf_counter()
    completed = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--make-checkpoint", model, str(path)],
                               check=False)
    if completed.returncode != 0:
        raise SystemExit(f"index_throughput: could not build {model} with random weights")
    return str(path), time.perf_counter() - began


def _model_spec(args: argparse.Namespace, work: Path) -> tuple[str, str, str]:
    """(model, pretrained, note) for both the end-to-end run and the ceilings."""
    if args.test_model:
        if not TEST_CONFIG.is_file() or (not args.random_weights and not TEST_WEIGHTS.is_file()):
            raise SystemExit(f"index_throughput: the test model is missing ({TEST_CONFIG}, {TEST_WEIGHTS})")
        model = str(TEST_CONFIG)
        if not args.random_weights:
            return model, str(TEST_WEIGHTS), "the test model (tests/model)"
    else:
        model = args.model or DEFAULT_MODEL
    if args.random_weights:
        path, seconds = _random_checkpoint(model, work)
        size = Path(path).stat().st_size
        return model, path, f"random weights, saved as a {size / 1e6:.0f} MB checkpoint in {seconds:.1f} s"
    if args.pretrained:
        return model, args.pretrained, "weights as given"
    if model == DEFAULT_MODEL:
        return model, DEFAULT_PRETRAINED, "default weights"
    if ModelSpec(model, None).config_path is not None:
        raise SystemExit("index_throughput: a model config file needs --pretrained CHECKPOINT (or --random-weights)")
    return model, default_pretrained(model), "open_clip's first weights for it"


def _pick(files: list, limit: int | None) -> list:
    """`limit` files spread evenly over the sorted list, so the mix of folders and formats is kept."""
    if limit is None or limit >= len(files):
        return files
    return [files[i * len(files) // limit] for i in range(limit)]


def _read_all(paths: list[str], workers: int) -> tuple[int, float]:
    began = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(lambda path: len(read_file(path)), paths))
    return total, time.perf_counter() - began


# ---------------------------------------------------------------------------------------------------------------
# Ceilings.


def _decode_ceiling(paths: list[str], encoder: Encoder, workers: int) -> dict:
    settings = encoder.preprocessing
    errors: Counter[str] = Counter()

    def prepare(path: str) -> bool:
        try:
            decoded = decode_image(read_file(path), target_size=settings.image_size, max_megapixels=MAX_MEGAPIXELS)
            prepare_pixels(decoded.image, settings.image_size, settings.resize_mode, settings.interpolation)
            return True
        except ImageError as error:
            errors[str(error)] += 1
            return False

    began = time.perf_counter()
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        done = sum(pool.map(prepare, paths))
    seconds = time.perf_counter() - began
    return {"images": done, "failed": sum(errors.values()), "errors": dict(errors), "seconds": seconds,
            "images_per_s": len(paths) / seconds}


def _model_ceiling(encoder: Encoder, batch_size: int, min_seconds: float, min_batches: int) -> dict:
    size = encoder.preprocessing.image_size
    pixels = np.random.default_rng(0).integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8)
    for _ in range(2):  # warm-up: kernel selection, allocator, CUDA context
        encoder.embed_pixels(pixels)
    batches = 0
    began = time.perf_counter()
    while batches < min_batches or time.perf_counter() - began < min_seconds:
        encoder.embed_pixels(pixels)  # returns a numpy array: the device has finished
        batches += 1
    seconds = time.perf_counter() - began
    return {"batches": batches, "batch_size": batch_size, "image_size": size, "seconds": seconds,
            "images_per_s": batches * batch_size / seconds}


# ---------------------------------------------------------------------------------------------------------------
# Report.


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _describe_machine(device: str) -> str:
    torch = sys.modules.get("torch")
    if device == "cuda" and torch is not None:
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    threads = f", torch using {torch.get_num_threads()} threads" if torch is not None else ""
    return f"{device}: {cpu_name()}, {os.cpu_count()} cores{threads}"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("torch", "open_clip_torch", "openvino"):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{package} {version(package)}")
    return ", ".join(found)


CPU_FLAGS_OF_NOTE = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def cpu_name() -> str:
    """The CPU model and the vector-instruction flags that decide how fast a model runs on it: figures from
    machines with other flags are not comparable."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    present = [flag for flag in CPU_FLAGS_OF_NOTE if flag in flags]
    return f"{model} [{' '.join(present) or 'no AVX2/AVX-512/AMX'}]"


def _git_revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--child":
        return _child(argv[1])
    if len(argv) == 3 and argv[0] == "--make-checkpoint":
        return _make_checkpoint(argv[1], argv[2])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, metavar="CORPUS", help="folder of photos (bench/make_corpus.py)")
    parser.add_argument("--model", metavar="NAME|CONFIG.json", help=f"open_clip model (default {DEFAULT_MODEL})")
    parser.add_argument("--pretrained", metavar="TAG|PATH", help="weights tag or checkpoint file")
    parser.add_argument("--test-model", action="store_true", help="the tiny test model in tests/model/")
    parser.add_argument("--random-weights", action="store_true",
                        help="random weights, saved to a temporary checkpoint passed as --pretrained: no download")
    parser.add_argument("--batch-size", type=int, metavar="B",
                        help="images per model call (default: clipsearch's for the device)")
    parser.add_argument("--workers", type=int, metavar="W",
                        help="decoding threads (default: clipsearch's, one per core)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "int8"),
                        help="as `clipsearch index --precision`")
    parser.add_argument("--engine", default="auto", choices=("auto", "torch", "openvino"),
                        help="as `clipsearch index --engine` (auto: OpenVINO on a CPU where it is installed)")
    parser.add_argument("--limit", type=int, metavar="N", help="use N files spread evenly over the corpus")
    parser.add_argument("--rerun", action="store_true", help="also time a second index of the unchanged tree")
    parser.add_argument("--model-seconds", type=float, default=10.0, metavar="S",
                        help="time the model ceiling for at least S seconds (default 10)")
    parser.add_argument("--model-batches", type=int, default=3, metavar="K",
                        help="and at least K batches (default 3)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database and checkpoint")
    args = parser.parse_args(argv)
    if args.test_model and (args.model or args.pretrained):
        parser.error("--test-model replaces --model and --pretrained")
    if args.random_weights and args.pretrained:
        parser.error("--random-weights replaces --pretrained")
    for option in ("batch_size", "workers", "limit"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if not args.corpus.is_dir():
        parser.error(f"{args.corpus} is not a folder")

    work = Path(tempfile.mkdtemp(prefix="clipsearch-bench-"))
    try:
        return _bench(args, work)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args: argparse.Namespace, work: Path) -> int:
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    workers = args.workers or os.cpu_count() or 2  # what the pipeline does with workers=None

    corpus = args.corpus.expanduser().resolve()
    found = crawl([str(corpus)])
    files = _pick(list(found.files), args.limit)
    if not files:
        raise SystemExit(f"index_throughput: no image files under {corpus}")
    paths = [file.path for file in files]
    kinds = Counter(os.path.splitext(path)[1].lower() for path in paths)
    total_bytes = sum(file.size for file in files)
    manifest = corpus / ".corpus.json"
    origin = ""
    if manifest.is_file():
        with contextlib.suppress(ValueError, OSError):
            info = json.loads(manifest.read_text())
            origin = f", make_corpus --n {info['n']} --seed {info['seed']}"
    corpus_line = (f"{corpus}: {len(paths)} of {len(found.files)} files, {_gb(total_bytes)} "
                   f"({', '.join(f'{n} {ext}' for ext, n in kinds.most_common())}{origin})")

    log("preparing the model...")
    model, pretrained, model_note = _model_spec(args, work)
    identity = identify(ModelSpec(model, pretrained))

    log(f"reading {len(paths)} files once, so every figure sees a warm page cache...")
    read_bytes, read_s = _read_all(paths, workers)

    spec = {"db": str(work / "db"), "roots": [str(corpus)] if args.limit is None else paths, "model": model,
            "pretrained": pretrained, "device": args.device, "precision": args.precision,
            "batch_size": args.batch_size, "workers": workers, "engine": args.engine}
    log("end-to-end: indexing into a fresh database (child process)...")
    first = _run_child(spec, work, "index")
    rerun = None
    if args.rerun:
        log("re-index of the unchanged tree (child process)...")
        rerun = _run_child(spec, work, "rerun")

    log("loading the model in this process for the ceilings, as the index run did...")
    import_here_s = _import_torch() if args.engine == "torch" else 0.0
    began = time.perf_counter()
    announced = _Said()
    # The index run's database holds the converted tower (OpenVINO), so this takes the same engine and precision.
    logging.getLogger("clipsearch").addHandler(announced)
    logging.getLogger("clipsearch").setLevel(logging.INFO)
    try:
        encoder = load_indexing_encoder(identity, Device(args.device), Precision(args.precision),
                                        Engine(args.engine), DataDir(work / "db").openvino,
                                        lambda p: synthetic_probes(p.image_size))
    finally:
        logging.getLogger("clipsearch").removeHandler(announced)
    encoder.use_precision(args.precision)
    load_here_s = time.perf_counter() - began
    engine = next((line for line in announced.lines if line.startswith("embedding with")), None)
    engine = engine or f"torch, {getattr(encoder, 'precision', '?')}"
    batch_size = args.batch_size or encoder.default_batch_size
    log(f"decode-only ceiling: {len(paths)} files in {workers} threads...")
    decode = _decode_ceiling(paths, encoder, workers)
    log(f"model-only ceiling: batches of {batch_size} for at least {args.model_seconds:g} s...")
    model_ceiling = _model_ceiling(encoder, batch_size, args.model_seconds, args.model_batches)
    bench_rss = _peak_rss_bytes()

    # Figures.
    seconds = first["seconds"]
    load_s = first["import_s"] + first["load_s"] + first["resolve_s"]
    e2e_incl = first["indexed"] / seconds if seconds > 0 else None
    e2e_excl = first["indexed"] / (seconds - load_s) if seconds > load_s else None
    ceilings = {"model": model_ceiling["images_per_s"], "decode": decode["images_per_s"]}
    bound = min(ceilings, key=ceilings.get)
    shared = 1 / (1 / ceilings["model"] + 1 / ceilings["decode"])

    print(f"clipsearch index throughput (clipsearch {_git_revision()} at {REPO})")
    print(f"corpus:  {corpus_line}")
    print(f"model:   {identity.describe()} — {model_note}")
    device = getattr(encoder, "device", "cpu")
    print(f"machine: {_describe_machine(device)}; batch {batch_size}, {workers} decode threads, "
          f"input {encoder.preprocessing.image_size} px")
    print(f"engine:  {engine}")
    print(f"         Python {platform.python_version()}, {_versions()}, Pillow {_pillow_version()}")
    if first["batch_size"] is not None and first["batch_size"] != batch_size:
        print(f"         warning: the index run used batch {first['batch_size']}, the ceiling {batch_size}")
    print()
    rows = [
        ("end-to-end index, including model load", e2e_incl, seconds,
         f"{first['indexed']} indexed, {first['skipped']} skipped"),
        ("end-to-end index, excluding model load", e2e_excl, seconds - load_s,
         f"import {first['import_s']:.2f} s + load {first['load_s']:.2f} s + model check {first['resolve_s']:.2f} s"),
        ("model-only ceiling (embed_pixels)", model_ceiling["images_per_s"], model_ceiling["seconds"],
         f"{model_ceiling['batches']} batches of {batch_size} after 2 warm-up"),
        ("decode-only ceiling (read+decode+prepare)", decode["images_per_s"], decode["seconds"],
         f"{workers} threads" + (f", {decode['failed']} failed" if decode["failed"] else "")),
        ("read files (warm-up pass)", len(paths) / read_s, read_s, f"{read_bytes / read_s / 1e6:,.0f} MB/s"),
    ]
    if rerun is not None:
        rows.append(("re-index of the unchanged tree", None, rerun["seconds"],
                     f"{rerun['unchanged']} unchanged, {rerun['indexed']} indexed, {rerun['files_read']} read, "
                     f"{rerun['images_decoded']} decoded, model loaded: {'yes' if rerun['model_loads'] else 'no'}"))
    print(f"{'':<44}{'images/s':>10}{'seconds':>10}  notes")
    for label, rate, secs, note in rows:
        print(f"{label:<44}{_rate(rate):>10}{secs:>10.2f}  {note}")
    print()
    if e2e_excl is not None:
        print(f"end-to-end (excl. load) / min(model, decode ceiling) = {e2e_excl / ceilings[bound]:.0%}"
              f"  (the slower ceiling is {bound}: {_rate(ceilings[bound])} images/s)")
        if device == "cpu":
            print(f"end-to-end (excl. load) / shared-core bound = {e2e_excl / shared:.0%}  (1/(1/model + 1/decode) = "
                  f"{_rate(shared)} images/s: the rate if decoding and the model took turns on the same cores)")
    if "setup_s" in first:
        print(f"end-to-end phases: setup {first['setup_s']:.2f} s (lock, catalogue, model check, crawl), "
              f"processing {first['processing_s']:.2f} s (model load inside), final index save "
              f"{first['finish_s']:.2f} s; process wall {first['process_wall_s']:.2f} s with imports")
    print(f"model load: {first['load_s']:.2f} s in the index run (imports, the engine's conversion or check, the query "
          f"model; plus {first['import_s']:.2f} s importing torch before it, with --engine torch), {load_here_s:.2f} s "
          f"again in this process (plus {import_here_s:.2f} s importing)")
    memory = (f"peak RSS: end-to-end index process {_gb(first['peak_rss_bytes'])}, "
              f"this process (ceilings) {_gb(bench_rss)}")
    if rerun is not None:
        memory += f", re-index process {_gb(rerun['peak_rss_bytes'])}"
    if "cuda_peak_allocated_bytes" in first:
        memory += f"; CUDA peak allocated in the index run {_gb(first['cuda_peak_allocated_bytes'])}"
    print(memory)
    if first["indexed"] + first["skipped"] != len(paths):
        print(f"warning: {len(paths)} files, but the index run indexed {first['indexed']} and skipped "
              f"{first['skipped']}")

    if args.json:
        args.json.write_text(json.dumps({
            "clipsearch": _git_revision(), "corpus": str(corpus), "files": len(paths), "bytes": total_bytes,
            "kinds": dict(kinds), "model": identity.describe(), "device": device, "engine": engine,
            "precision": encoder.precision,
            "machine": _describe_machine(device), "batch_size": batch_size, "workers": workers,
            "end_to_end": first, "rerun": rerun, "model_ceiling": model_ceiling, "decode_ceiling": decode,
            "read": {"bytes": read_bytes, "seconds": read_s},
            "images_per_s": {"end_to_end_incl_load": e2e_incl, "end_to_end_excl_load": e2e_excl, **ceilings},
            "share_of_min_ceiling": e2e_excl / ceilings[bound] if e2e_excl else None,
            "model_load_here_s": load_here_s, "peak_rss_bench_bytes": bench_rss,
        }, indent=2) + "\n")
    return 0


def _pillow_version() -> str:
    import PIL

    return PIL.__version__


if __name__ == "__main__":
    if importlib.util.find_spec("open_clip") is None:
        sys.exit("index_throughput: open_clip is not installed (pip install -e . in this checkout)")
    sys.exit(main())
