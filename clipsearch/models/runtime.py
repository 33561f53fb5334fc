"""Running a model: the Encoder interface every backend provides, the backend a model loads with, and the engine
that runs the image tower while indexing.

A backend loads a model's weights onto a device and turns uint8 pixels and texts into L2-normalised
vectors: open_clip (clipsearch.models.openclip) for open_clip names and checkpoints, and Hugging Face
transformers (clipsearch.models.hf) for `hf:` names. The identity says which; the callers never do.

While indexing, `--engine auto` takes OpenVINO (clipsearch.models.openvino) when it is installed, the machine is
x86-64, and no GPU is in sight (an NVIDIA driver's device files; Apple silicon's GPU through torch); `--engine
openvino` insists and `--engine torch` declines. The OpenVINO tower converted earlier, if it passes its checks,
embeds without torch ever being imported; otherwise the torch model is loaded, converted, checked, and kept only
to write the query model.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from clipsearch.errors import ModelError, UsageError, env_number
from clipsearch.models.device import DEFAULT_BATCH_SIZE, Device, Engine, Precision
from clipsearch.models.identity import ModelIdentity, missing_files
from clipsearch.models.openvino import (
    Converted,
    OpenVinoTower,
    convert,
    load_checked,
    openvino_version,
    synthetic_probes,
)
from clipsearch.models.preprocessing import Preprocessing

if TYPE_CHECKING:
    from clipsearch.models.query_model_export import ExportReport


class Encoder(Protocol):
    identity: ModelIdentity
    preprocessing: Preprocessing
    device: str  # the torch device it runs on
    precision: str  # what it computes in now: fp32, fp16 or int8
    software: str  # the library and version that runs it, e.g. "open_clip 3.3.0"
    logit_scale: float  # what the model multiplies cosines by before a softmax (zero-shot probabilities)

    @property
    def default_batch_size(self) -> int: ...

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3, already at the model's size -> L2-normalised float32 N x dim."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> L2-normalised float32 N x dim."""

    def use_precision(self, precision: Precision) -> None:
        """Switch to the precision asked for (auto: the fastest faithful one for the device); only once."""

    def export_query_model(self, folder: Path) -> ExportReport:
        """Write the model's numpy query model to `folder`, checked; the report says what was written or why not.

        Call it before use_precision(): the query model copies the full-precision weights.
        """


def load_encoder(identity: ModelIdentity, device: Device | str = Device.auto) -> Encoder:
    """The model's weights loaded on a device, at the device's full precision (fp16 on CUDA, else fp32)."""
    problem = missing_files(identity)
    if problem:
        raise ModelError(problem)
    if identity.backend == "transformers":
        from clipsearch.models.hf import HuggingFaceEncoder

        return HuggingFaceEncoder(identity, device)
    from clipsearch.models.openclip import OpenClipEncoder

    return OpenClipEncoder(identity, device)


log = logging.getLogger(__name__)


def _gpu_in_sight() -> bool:
    return (os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")
            or (platform.system() == "Darwin" and platform.machine() == "arm64"))


def wants_openvino(engine: Engine, device: Device, precision: Precision) -> bool:
    if engine is Engine.torch:
        if precision is Precision.bf16:
            raise UsageError("--precision bf16 runs on OpenVINO: leave out --engine torch")
        return False
    available = openvino_version() is not None
    if engine is Engine.openvino:
        if not available:
            raise UsageError("--engine openvino: OpenVINO is not installed (pip install openvino)")
        if device not in (Device.auto, Device.cpu):
            raise UsageError(f"--engine openvino runs on the CPU, not on --device {device.value}")
        return True
    if precision is Precision.bf16 and not available:
        raise UsageError("--precision bf16 runs on OpenVINO, which is not installed (pip install openvino)")
    return (available and device in (Device.auto, Device.cpu) and not _gpu_in_sight()
            and platform.machine().lower() in ("x86_64", "amd64"))


class OpenVinoEncoder:
    """The Encoder of an indexing run on OpenVINO: images through the converted tower; texts and the query model
    through the torch model, loaded only if they are asked for."""

    def __init__(self, tower: OpenVinoTower, converted: Converted, identity: ModelIdentity,
                 torch_model: Callable[[], Encoder]) -> None:
        self.identity = identity
        self.preprocessing = tower.preprocessing
        self.device = "cpu"
        self.precision = tower.precision
        self.software = f"openvino {converted.openvino}"
        self.logit_scale = converted.logit_scale
        self.checked = converted
        self._tower = tower
        self._torch_model = torch_model
        self._torch: Encoder | None = None

    @property
    def default_batch_size(self) -> int:
        return DEFAULT_BATCH_SIZE["cpu"]

    def _fallback(self) -> Encoder:
        if self._torch is None:
            self._torch = self._torch_model()
        return self._torch

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self._tower.embed_pixels(pixels)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._fallback().embed_texts(texts)

    def export_query_model(self, folder: Path) -> Any:
        return self._fallback().export_query_model(folder)

    def use_precision(self, precision: Precision | str) -> None:
        """Chosen and checked when the tower loaded; this lets go of the torch model, which only the query model's
        export needed."""
        self._torch = None


def load_indexing_encoder(identity: ModelIdentity, device: Device, precision: Precision, engine: Engine,
                          folder: Path, probes: Callable[[Preprocessing], np.ndarray]) -> Encoder:
    """The encoder an `index` run embeds with (wants_openvino() for the choice)."""
    if not wants_openvino(engine, device, precision):
        return load_encoder(identity, device)
    threads = int(env_number("CLIPSEARCH_OPENVINO_THREADS", 0, minimum=0, integer=True)) or None
    loaded = load_checked(folder, identity, precision.value, threads)
    if loaded is not None:
        log.info(_announcement(loaded[1]))
        return OpenVinoEncoder(*loaded, identity, lambda: load_encoder(identity, device))
    model = load_encoder(identity, device)
    log.info("converting the image tower to OpenVINO (once per model)")
    try:
        size = model.preprocessing.image_size
        convert(model, folder, np.concatenate([probes(model.preprocessing), synthetic_probes(size)]))
        loaded = load_checked(folder, identity, precision.value, threads)
    except UsageError:  # a bad CLIPSEARCH_OPENVINO_* variable is the user's to fix, not OpenVINO's failing
        raise
    except Exception as error:  # a tower OpenVINO cannot take: torch does the work, as before
        log.info(f"OpenVINO could not take this model ({' '.join(str(error).split())[:120]}): embedding with "
                 "torch")
        return model
    if loaded is None:
        log.info("OpenVINO's embeddings did not match the model's closely enough at any precision: embedding "
                 "with torch")
        return model
    log.info(_announcement(loaded[1]))
    return OpenVinoEncoder(*loaded, identity, lambda: model)


def _announcement(converted: Converted) -> str:
    return (f"embedding with OpenVINO {converted.openvino} in {converted.precision} ({converted.reason}; checked: "
            f"min cosine {converted.min_cosine:.4f} to the model)")
