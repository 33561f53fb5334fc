"""Which engine runs the image tower while indexing: OpenVINO on a CPU when it can, torch otherwise.

`--engine auto` takes OpenVINO when it is installed, the machine is x86-64, and no GPU is in sight (an NVIDIA
driver's device files; Apple silicon's GPU through torch); `--engine openvino` insists and `--engine torch`
declines. The OpenVINO tower converted earlier, if it passes its checks, embeds without torch ever being
imported; otherwise the torch model is loaded, converted, checked, and kept only to write the query model.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.errors import UsageError, env_number
from clipsearch.models.backend import Encoder, load_encoder
from clipsearch.models.device import DEFAULT_BATCH_SIZE, Device, Engine, Precision
from clipsearch.models.identity import ModelIdentity
from clipsearch.models.openvino_engine import (
    Converted,
    OpenVinoTower,
    convert,
    load_checked,
    openvino_version,
    synthetic_probes,
)
from clipsearch.models.preprocessing import Preprocessing

Say = Callable[[str], None]


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
                          folder: Path, probes: Callable[[Preprocessing], np.ndarray], say: Say) -> Encoder:
    """The encoder an `index` run embeds with (clipsearch.models.engines for the choice)."""
    if not wants_openvino(engine, device, precision):
        return load_encoder(identity, device)
    threads = int(env_number("CLIPSEARCH_OPENVINO_THREADS", 0, minimum=0, integer=True)) or None
    loaded = load_checked(folder, identity, precision.value, threads)
    if loaded is not None:
        say(_announcement(loaded[1]))
        return OpenVinoEncoder(*loaded, identity, lambda: load_encoder(identity, device))
    model = load_encoder(identity, device)
    say("converting the image tower to OpenVINO (once per model)")
    try:
        size = model.preprocessing.image_size
        convert(model, folder, np.concatenate([probes(model.preprocessing), synthetic_probes(size)]))
        loaded = load_checked(folder, identity, precision.value, threads)
    except UsageError:  # a bad CLIPSEARCH_OPENVINO_* variable is the user's to fix, not OpenVINO's failing
        raise
    except Exception as error:  # a tower OpenVINO cannot take: torch does the work, as before
        say(f"OpenVINO could not take this model ({' '.join(str(error).split())[:120]}): embedding with torch")
        return model
    if loaded is None:
        say("OpenVINO's embeddings did not match the model's closely enough at any precision: embedding with torch")
        return model
    say(_announcement(loaded[1]))
    return OpenVinoEncoder(*loaded, identity, lambda: model)


def _announcement(converted: Converted) -> str:
    return (f"embedding with OpenVINO {converted.openvino} in {converted.precision} ({converted.reason}; checked: "
            f"min cosine {converted.min_cosine:.4f} to the model)")
