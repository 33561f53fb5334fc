"""The interface every model backend provides, and the one place that picks a backend for a model.

A backend loads a model's weights onto a device and turns uint8 pixels and texts into L2-normalised
vectors: open_clip (clipsearch.models.openclip) for open_clip names and checkpoints, and Hugging Face
transformers (clipsearch.models.hf) for `hf:` names. The identity says which; the callers never do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from clipsearch.errors import ModelError
from clipsearch.models.device import Device, Precision
from clipsearch.models.identity import ModelIdentity, missing_files
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
