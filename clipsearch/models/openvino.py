"""The image tower on OpenVINO, for indexing on a CPU: converted once from the torch model, kept in the database
folder, checked every time it loads, and run in bf16 or int8 where the CPU does those well.

The converted tower (OpenVINO IR) is a cache, like the HNSW file: it is keyed to the model's identity and the
OpenVINO version, its files are fingerprinted, and a copy that fails any check is made again from the model.
With it, `index` embeds images without importing torch. Every load runs the tower on the probe pictures
saved with it (synthetic ones and the first photos it was converted with) and compares with the torch fp32
embeddings saved beside them: min cosine >= 0.999 for fp32 and bf16, >= 0.99 for int8, else the next precision
is tried, and torch is the last resort. Which precision `auto` takes is measured, not assumed: the CPU's features
name the candidates, and the first load on a CPU times each faithful one and keeps the fastest.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.errors import env_number
from clipsearch.filesystem import fingerprint, remove_leftovers, temporary_name, write_json_atomically
from clipsearch.models.identity import ModelIdentity
from clipsearch.models.preprocessing import Preprocessing

FORMAT_VERSION = 1
MANIFEST, MODEL_XML, PROBES, REFERENCE, CACHE = "manifest.json", "image.xml", "probes.npy", "reference.npy", "cache"
INT8_XML = "image-int8.xml"  # int8 weights, compressed by NNCF at conversion (when torch is loaded anyway)
FAITHFUL = {"fp32": 0.999, "bf16": 0.999, "int8": 0.99}
MIN_COSINE_ENV = "CLIPSEARCH_OPENVINO_MIN_COSINE"  # demand more (or, in tests, too much) of every precision


def _cpuinfo(name: str) -> str:
    """A field of the first processor in /proc/cpuinfo ("" where there is none, as on macOS)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> set[str]:
    return set(_cpuinfo("flags").split())


def cpu_model() -> str:
    import platform

    return _cpuinfo("model name") or platform.processor() or platform.machine()


def precision_order(requested: str, flags: set[str]) -> tuple[list[str], str]:
    """The precisions worth trying on a CPU with these features, and why; `auto`'s are then timed (load_checked)."""
    if requested != "auto":
        return [requested], f"--precision {requested}"
    bf16 = "AMX" if "amx_bf16" in flags else "AVX-512 BF16" if "avx512_bf16" in flags else None
    vnni = bool({"avx512_vnni", "avx_vnni"} & flags)
    order = (["bf16"] if bf16 else []) + (["int8"] if vnni else []) + ["fp32"]
    features = " and ".join(name for name in (bf16, "VNNI (int8)" if vnni else None) if name)
    return order, f"the CPU has {features}" if features else "the CPU has neither bf16 nor VNNI"


def openvino_version() -> str | None:
    """OpenVINO's version, or None when it cannot be imported here (not installed, or no wheel for this platform)."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    try:
        if importlib.util.find_spec("openvino") is None:
            return None
        return version("openvino")
    except (PackageNotFoundError, ImportError, ValueError):
        return None


def recorded_engine(folder: Path, identity: ModelIdentity) -> Converted | None:
    """What the last `index` on OpenVINO chose and checked, for `status` (which imports no OpenVINO)."""
    try:
        converted = Converted(**json.loads((folder / MANIFEST).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return converted if ModelIdentity.from_dict(converted.identity).same_model(identity) else None


@dataclass(frozen=True)
class Converted:
    """What a folder holds: the tower, for which model and OpenVINO, and how it was checked when chosen."""

    version: int
    identity: dict
    openvino: str
    preprocessing: dict
    logit_scale: float
    fingerprint: dict  # of every file the tower is made of (_fingerprints): damage to any one means convert again
    precision: str = ""  # chosen at the last load, with its check
    min_cosine: float = 0.0
    reason: str = ""
    cpu: str = ""  # the CPU the speeds were measured on; another CPU measures them again
    speeds: dict = field(default_factory=dict)  # images/s of each faithful precision on that CPU


def read_converted(folder: Path, identity: ModelIdentity) -> Converted | None:
    """The folder's manifest, if it is for this model and this OpenVINO and its weights are the ones written."""
    try:
        converted = Converted(**json.loads((folder / MANIFEST).read_text()))
        if (converted.version != FORMAT_VERSION or converted.openvino != openvino_version()
                or not ModelIdentity.from_dict(converted.identity).same_model(identity)):
            return None
        if _fingerprints(folder) != converted.fingerprint:
            return None
        return converted
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _fingerprints(folder: Path) -> dict[str, list]:
    """Each file of a converted tower (not the manifest, nor OpenVINO's compile cache) by name: size and hash."""
    return {path.name: list(fingerprint(path)) for path in sorted(folder.iterdir())
            if path.is_file() and path.name != MANIFEST}


class OpenVinoTower:
    """A compiled image tower: uint8 NHWC pixels at the model's size -> L2-normalised vectors."""

    def __init__(self, compiled: Any, preprocessing: Preprocessing, precision: str) -> None:
        self._compiled = compiled
        self.preprocessing = preprocessing
        self.precision = precision
        self._mean = np.array(preprocessing.mean, np.float32).reshape(1, 3, 1, 1) * 255
        self._std = np.array(preprocessing.std, np.float32).reshape(1, 3, 1, 1) * 255

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        batch = (pixels.transpose(0, 3, 1, 2).astype(np.float32) - self._mean) / self._std
        features = self._compiled(batch)[0]
        norms = np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        return (features / norms).astype(np.float32)


def _compile(folder: Path, precision: str, threads: int | None) -> Any:
    import openvino as ov

    core = ov.Core()
    core.set_property({"CACHE_DIR": str(folder / CACHE)})
    model = core.read_model(folder / (INT8_XML if precision == "int8" else MODEL_XML))
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return core.compile_model(model, "CPU", config)


def load_checked(folder: Path, identity: ModelIdentity, requested: str, threads: int | None = None,
                 ) -> tuple[OpenVinoTower, Converted] | None:
    """The converted tower at the best precision that passes its check on the saved probes, or None (there is no
    sound conversion for this model, or no precision passes: torch it is).

    With --precision auto, "best" is measured: the CPU's features say which precisions may pay off, and the first
    load on a CPU times each faithful one on the probes and keeps the fastest (recorded in the manifest, so later
    loads on that CPU compile only the winner, though they still check it)."""
    converted = read_converted(folder, identity)
    if converted is None:
        return None
    try:  # fingerprinted, but read again since: any failure to load means "convert again", never an error
        probes, reference = np.load(folder / PROBES), np.load(folder / REFERENCE)
    except (OSError, ValueError, EOFError):
        return None
    preprocessing = Preprocessing(**converted.preprocessing)
    order, reason = precision_order(requested, cpu_flags())
    known = [precision for precision in order if precision in converted.speeds]
    measured = converted.cpu == cpu_model() and bool(known)
    if measured:  # only those that passed when timed, fastest first
        order = sorted(known, key=lambda precision: -converted.speeds[precision])
    timing = not measured and len(order) > 1
    speeds = {} if timing else dict(converted.speeds)
    best: tuple[OpenVinoTower, float, float] | None = None  # the tower, its min cosine, its images/s
    for precision in order:
        checked = _checked_tower(folder, precision, preprocessing, probes, reference, threads)
        if checked is None:
            continue
        if not timing:
            best = (*checked, 0.0)
            break
        speeds[precision] = round(_speed(checked[0], probes), 1)
        if best is None or speeds[precision] > best[2]:
            best = (*checked, speeds[precision])  # a slower tower is let go at once: one compiled model at a time
    if best is None:
        return None
    tower, cosine, _ = best
    if requested == "auto" and len(speeds) > 1:
        reason += "; measured here: " + ", ".join(f"{p} {rate:g}/s" for p, rate in speeds.items())
    chosen = Converted(**{**asdict(converted), "precision": tower.precision, "min_cosine": round(cosine, 6),
                          "reason": reason, "cpu": cpu_model() if timing else converted.cpu, "speeds": speeds})
    if chosen != converted:
        write_json_atomically(folder / MANIFEST, asdict(chosen))
    return tower, chosen


def _checked_tower(folder: Path, precision: str, preprocessing: Preprocessing, probes: np.ndarray,
                   reference: np.ndarray, threads: int | None) -> tuple[OpenVinoTower, float] | None:
    """The tower compiled at `precision` with its min cosine to torch fp32 on the probes, if that is close enough."""
    try:
        tower = OpenVinoTower(_compile(folder, precision, threads), preprocessing, precision)
        cosine = float(np.min(np.sum(tower.embed_pixels(probes) * reference, axis=1)))
    except Exception:  # a precision this CPU or OpenVINO cannot compile: the next one
        return None
    needed = env_number(MIN_COSINE_ENV, FAITHFUL[precision], minimum=-1)
    return (tower, cosine) if cosine >= needed else None


def _speed(tower: OpenVinoTower, probes: np.ndarray, batch: int = 16) -> float:
    """Images/s on a batch of probes (repeated to `batch`), the best of three after a warm-up."""
    import time

    pixels = np.resize(probes, (batch, *probes.shape[1:]))
    tower.embed_pixels(pixels)
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        tower.embed_pixels(pixels)
        best = min(best, time.perf_counter() - began)
    return batch / best


def convert(torch_encoder: Any, folder: Path, probes: np.ndarray) -> None:
    """Convert a loaded torch encoder's image tower to OpenVINO IR in `folder`, with the probes and their fp32
    embeddings. Written into a staging folder and swapped in whole."""
    import openvino as ov
    import torch

    size = torch_encoder.preprocessing.image_size
    remove_leftovers(folder)
    staging = temporary_name(folder)
    staging.mkdir(parents=True)
    try:
        tower = torch_encoder.image_tower().requires_grad_(False)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing warnings are for the model's authors
            model = ov.convert_model(tower, example_input=torch.zeros(1, 3, size, size),
                                     input=[ov.PartialShape([-1, 3, size, size])])
        ov.save_model(model, staging / MODEL_XML, compress_to_fp16=False)
        _save_int8(ov, model, staging)
        np.save(staging / PROBES, probes)
        np.save(staging / REFERENCE, torch_encoder.embed_pixels(probes))
        manifest = Converted(FORMAT_VERSION, torch_encoder.identity.to_dict(), openvino_version() or "",
                             asdict(torch_encoder.preprocessing), float(torch_encoder.logit_scale),
                             _fingerprints(staging))
        (staging / MANIFEST).write_text(json.dumps(asdict(manifest)))
        retired = folder.with_name(f"{folder.name}.old{os.getpid()}")
        if folder.exists():
            os.replace(folder, retired)
        os.replace(staging, folder)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _save_int8(ov: Any, model: Any, folder: Path) -> None:
    """int8 weights (NNCF weight compression) beside the fp32 ones, for CPUs with VNNI (auto takes them where there
    is no bf16; --precision int8 anywhere with VNNI). NNCF imports
    torch, so it runs here, at conversion, and later runs load the result without it."""
    if not {"avx512_vnni", "avx_vnni"} & cpu_flags():  # int8 is only worth it where the CPU has VNNI
        return
    try:
        import nncf
    except ImportError:  # without NNCF, such CPUs run fp32
        return
    import contextlib
    import io
    import logging

    # NNCF reports its statistics and a progress bar on stdout, which belongs to clipsearch's results.
    logging.getLogger("nncf").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    ov.save_model(compressed, folder / INT8_XML, compress_to_fp16=False)


def synthetic_probes(size: int, count: int = 4) -> np.ndarray:
    """Pictures with structure at several scales (gradients, blocks, noise), the same every time."""
    rng = np.random.default_rng(1234)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    pictures = []
    for k in range(count):
        base = (ramp[None, :, None] * (k + 1) % 256 + ramp[:, None, None] * (count - k) / count) / 2
        cells = -(-size // 8)
        blocks = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((cells, cells, 1)))[:size, :size]
        pictures.append(np.clip(0.5 * base + 0.4 * blocks + rng.normal(0, 12, (size, size, 3)), 0, 255))
    return np.stack(pictures).astype(np.uint8)
