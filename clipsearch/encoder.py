"""Load an open_clip model, pick the device, embed images and texts.

torch and open_clip take seconds to import, so they are imported inside the functions
that embed; naming and comparing models (clipsearch.models) needs neither.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.errors import ModelError, UsageError
from clipsearch.models import ModelIdentity, quiet_root_logger

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "int8")
DEFAULT_BATCH_SIZE = {"cpu": 32, "cuda": 256, "mps": 64}

def _quantize_image_mlps(model: Any) -> bool:
    """int8 weights for the image tower's transformer MLPs, the bulk of a ViT's work on a CPU.

    Measured on ViT-B-32 (2-core CPU, batch 32): 26.7 images/s instead of 16.0, with every
    embedding's cosine to the fp32 one above 0.9997. Attention and the projection stay fp32,
    and so does the text tower. Other layers are left alone on purpose: some towers (open_clip's
    ResNet attention pool) read a Linear's weight directly, which a quantised module breaks.
    """
    import torch

    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # deprecated in torch; gone in some future release
        return False
    names = {
        name for name, module in model.visual.named_modules()
        if type(module) is torch.nn.Linear and name.rsplit(".", 2)[-2:-1] == ["mlp"]
    }
    if not names:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notices are ours to handle, not the user's to read
        quantize_dynamic(model.visual, qconfig_spec=names, dtype=torch.qint8, inplace=True)
    return True


def _create_model(open_clip: Any, identity: ModelIdentity, device: str) -> Any:
    """The model with its weights: a local file, the download cache, or (only then) the network."""

    def create() -> Any:
        model, _, _ = open_clip.create_model_and_transforms(
            identity.architecture, pretrained=identity.checkpoint_path or identity.pretrained, device=device,
            precision="fp16" if device == "cuda" else "fp32",
        )
        return model

    try:
        if not identity.pretrained:
            return create()
        try:
            with _hub_offline():  # cached weights load at once, with or without a network
                return create()
        except RuntimeError as error:
            if "download" not in str(error).lower():
                raise
        problem = _hub_unreachable()
        if problem:
            raise RuntimeError(f"Failed to download: {problem}")
        return create()  # open_clip shows the download's progress bar
    except RuntimeError as error:
        raise _model_error(identity, error) from error


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:
        yield
        return
    # Offline, huggingface_hub logs every retry with a traceback; our one-line error says what to do.
    hub_logging.set_verbosity_error()
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the model hub cannot be reached, or None: a quick check that spares offline users minutes of retries."""
    import os
    import socket
    from urllib.parse import urlparse

    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    if constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE)"
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # through a proxy, only the download itself can tell
    endpoint = urlparse(constants.ENDPOINT)
    host = endpoint.hostname or ""
    try:
        socket.create_connection((host, endpoint.port or 443), timeout=timeout).close()
    except OSError as error:
        return f"cannot reach {host} ({error.strerror or error})"
    return None


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested not in DEVICES:
        raise UsageError(f"--device {requested}: choose one of {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        raise UsageError("--device cuda: no CUDA GPU is visible to torch (is this a CPU-only torch build?)")
    if requested == "mps" and not mps:
        raise UsageError("--device mps: Apple's Metal backend is not available on this machine")
    return requested


@dataclass(frozen=True)
class Preprocessing:
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    resize_mode: str


class Encoder:
    """One loaded model on one device. Inputs are already resized uint8 pixels, so workers do the PIL work."""

    def __init__(self, identity: ModelIdentity, device: str = "auto", precision: str = "auto",
                 export_to: Path | None = None, reparameterize: bool = True) -> None:
        """`export_to`: where to keep the numpy copy of the model that lets later queries skip torch.

        `reparameterize=False` keeps a MobileCLIP image tower in its training form (for benchmarks only).
        """
        import torch

        if precision not in PRECISIONS:
            raise UsageError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")

        with quiet_root_logger():
            import open_clip

            self.device = pick_device(device)
            self.identity = identity
            if identity.config_path:
                open_clip.add_model_config(identity.config_path)
            model = _create_model(open_clip, identity, self.device)
            self._tokenizer = open_clip.get_tokenizer(identity.architecture)
        self._model = model.eval()
        if reparameterize:
            reparameterize_for_inference(model)
        self.preprocessing = _preprocessing(open_clip, model)
        if export_to is not None:
            _export_for_queries(model, self._tokenizer, self.preprocessing, identity, export_to)
        self._dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.precision = "fp16" if self.device == "cuda" else "fp32"
        if precision == "int8" and self.device != "cpu":
            raise UsageError(f"--precision int8 runs on the CPU only, not on {self.device}")
        if self.device == "cpu" and precision in ("auto", "int8"):
            if _quantize_image_mlps(model):
                self.precision = "int8"
            elif precision == "int8":
                raise UsageError("--precision int8: this torch has no dynamic int8 quantisation, or the model has "
                                 "no transformer layers to quantise; use --precision fp32")
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(self.preprocessing.mean, device=self.device).view(shape) * 255
        self._std = torch.tensor(self.preprocessing.std, device=self.device).view(shape) * 255

    @property
    def default_batch_size(self) -> int:
        return DEFAULT_BATCH_SIZE.get(self.device, 32)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3, already at the model's size -> L2-normalised float32 N x dim."""
        import torch

        with torch.inference_mode():
            batch = torch.from_numpy(pixels).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
            batch = ((batch - self._mean) / self._std).to(self._dtype).contiguous(memory_format=torch.channels_last)
            features = self._model.encode_image(batch).float()
            return torch.nn.functional.normalize(features, dim=-1).cpu().numpy()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tokens = self._tokenizer(list(texts)).to(self.device)
            features = self._model.encode_text(tokens).float()
            return torch.nn.functional.normalize(features, dim=-1).cpu().numpy()


_REPARAMETERIZE_HOOKS = ("reparameterize", "fuse", "switch_to_deploy")  # what timm's reparameterize_model calls


def has_reparameterizable_blocks(visual: Any) -> bool:
    """Whether an image tower has training-time branches (MobileCLIP's) that inference can fold away."""
    return any(hasattr(module, hook) for module in visual.modules() for hook in _REPARAMETERIZE_HOOKS)


def reparameterize_for_inference(model: Any) -> bool:
    """Fold the training-time branches of a reparameterisable image tower into plain convolutions.

    MobileCLIP's towers (timm FastViT-MCi, MobileOne blocks) are published in their training form, with parallel
    conv + BatchNorm branches per block, and Apple's model cards say to fold them before inference: the same
    function, 1.4-1.5x the images/s on a CPU (bench/model_speed.py). BatchNorm statistics are folded in fp32, even
    for a model loaded in fp16 on CUDA. ViTs have no such blocks and are left untouched. Returns whether anything
    was folded.
    """
    visual = model.visual
    if not has_reparameterizable_blocks(visual):
        return False
    try:
        from timm.utils import reparameterize_model
    except ImportError:  # a timm too old to have it: the unfolded tower gives the same embeddings, only slower
        return False
    dtype = next(visual.parameters()).dtype
    visual.float()
    reparameterize_model(visual, inplace=True)
    visual.to(dtype)
    return True


def _preprocessing(open_clip: Any, model: Any) -> Preprocessing:
    config = open_clip.get_model_preprocess_cfg(model)
    size = config.get("size", 224)
    return Preprocessing(
        image_size=size if isinstance(size, int) else size[0],
        mean=tuple(config.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(config.get("std", open_clip.OPENAI_DATASET_STD)),
        interpolation=config.get("interpolation", "bicubic"),
        resize_mode=config.get("resize_mode", "shortest"),
    )


def _export_for_queries(model: Any, tokenizer: Any, preprocessing: Preprocessing, identity: ModelIdentity,
                        folder: Path) -> None:
    # Before int8 quantisation, which would change the image tower's weights. A cache: failing to write it is fine.
    from clipsearch.query_model import export_query_model, read_manifest

    if read_manifest(folder, identity) is None:
        with contextlib.suppress(OSError):
            export_query_model(model, tokenizer, preprocessing, identity, folder)


def _model_error(identity: ModelIdentity, error: Exception) -> ModelError:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    if identity.pretrained and "download" in reason.lower():
        return ModelError(
            f"could not download the weights of {identity.describe()} ({reason}). Offline? Fetch the checkpoint "
            "on a connected machine (open_clip_pytorch_model.bin from the model's Hugging Face page) and pass "
            f"it: --model {identity.architecture} --pretrained /path/to/open_clip_pytorch_model.bin"
        )
    return ModelError(f"could not load {identity.describe()}: {reason}")
