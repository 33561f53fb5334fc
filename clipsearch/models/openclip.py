"""The open_clip backend: load a model and its weights, pick precision, embed images and texts.

torch and open_clip take seconds to import, so they are imported inside the functions that
need them; naming and comparing models (clipsearch.models.identity) needs neither.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.errors import ModelError, UsageError
from clipsearch.models.checkpoints import checkpoint_error
from clipsearch.models.device import DEFAULT_BATCH_SIZE, Device, Precision, pick_device, torch_quantisation_wanted
from clipsearch.models.hub import hub_offline, hub_unreachable, quiet_root_logger
from clipsearch.models.identity import ModelIdentity
from clipsearch.models.preprocessing import Preprocessing
from clipsearch.models.query_model_export import ExportReport, export_query_model


class OpenClipEncoder:
    """One open_clip model on one device. Inputs are already resized uint8 pixels, so workers do the PIL work."""

    def __init__(self, identity: ModelIdentity, device: Device | str = Device.auto,
                 reparameterize: bool = True) -> None:
        """`reparameterize=False` keeps a MobileCLIP image tower in its training form (for benchmarks only)."""
        import torch

        with quiet_root_logger():
            import open_clip

            self.device = pick_device(device)
            self.identity = identity
            if identity.config_path:
                open_clip.add_model_config(identity.config_path)
            model = _create_model(open_clip, identity, self.device)
            self._tokenizer = open_clip.get_tokenizer(identity.architecture)
            self.software = f"open_clip {open_clip.__version__}"
        self._model = model.eval()
        if reparameterize:
            reparameterize_for_inference(model)
        self.preprocessing = _preprocessing(open_clip, model)
        self.logit_scale = float(model.logit_scale.exp().item()) if hasattr(model, "logit_scale") else 100.0
        self._dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.precision = "fp16" if self.device == "cuda" else "fp32"
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(self.preprocessing.mean, device=self.device).view(shape) * 255
        self._std = torch.tensor(self.preprocessing.std, device=self.device).view(shape) * 255

    def export_query_model(self, folder: Path) -> ExportReport:
        if self.precision == "int8":
            raise RuntimeError("the query model must be exported before int8 quantisation changes the weights")
        return export_query_model(self._model, self._tokenizer, self.preprocessing, self.identity, folder)

    def use_precision(self, precision: Precision | str) -> None:
        wanted = torch_quantisation_wanted(precision, self.device, self.precision)
        if wanted is None:
            return
        if _quantize_image_mlps(self._model):
            self.precision = "int8"
        elif wanted is Precision.int8:
            raise UsageError("--precision int8: this torch has no dynamic int8 quantisation, or the model has "
                             "no transformer layers to quantise; use --precision fp32")

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

    def image_tower(self) -> Any:
        """A torch module from normalised NCHW pixels to the image features (not yet L2-normalised), for
        converting to another engine (clipsearch.models.openvino)."""
        import torch

        class ImageTower(torch.nn.Module):
            def __init__(self, model: Any) -> None:
                super().__init__()
                self.model = model

            def forward(self, pixels: torch.Tensor) -> torch.Tensor:
                return self.model.encode_image(pixels)

        return ImageTower(self._model).eval()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tokens = self._tokenizer(list(texts)).to(self.device)
            features = self._model.encode_text(tokens).float()
            return torch.nn.functional.normalize(features, dim=-1).cpu().numpy()


def _quantize_image_mlps(model: Any) -> bool:
    """int8 weights for the image tower's transformer MLPs, the bulk of a ViT's work on a CPU.

    About twice the images/s, with embeddings within 0.9998 cosine of fp32 (docs/speed.md). Attention and
    the projection stay fp32, and so does the text tower. Other layers are left alone on purpose: some towers
    (open_clip's ResNet attention pool) read a Linear's weight directly, which a quantised module breaks.
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

    if not identity.pretrained:
        try:
            return create()
        except Exception as error:  # torch and open_clip raise many kinds for weights that do not fit
            raise checkpoint_error(identity, error) from error
    try:
        try:
            with hub_offline():  # cached weights load at once, with or without a network
                return create()
        except RuntimeError as error:
            if "download" not in str(error).lower():
                raise
        problem = hub_unreachable()
        if problem:
            raise RuntimeError(f"Failed to download: {problem}")
        return create()  # open_clip shows the download's progress bar
    except RuntimeError as error:
        raise _model_error(identity, error) from error


_REPARAMETERIZE_HOOKS = ("reparameterize", "fuse", "switch_to_deploy")  # what timm's reparameterize_model calls


def has_reparameterizable_blocks(visual: Any) -> bool:
    """Whether an image tower has training-time branches (MobileCLIP's) that inference can fold away."""
    return any(hasattr(module, hook) for module in visual.modules() for hook in _REPARAMETERIZE_HOOKS)


def reparameterize_for_inference(model: Any) -> bool:
    """Fold the training-time branches of a reparameterisable image tower into plain convolutions.

    MobileCLIP's towers (timm FastViT-MCi, MobileOne blocks) are published in their training form, with parallel
    conv + BatchNorm branches per block, and Apple's model cards say to fold them before inference: the same
    function, faster on a CPU (bench/model_speed.py). BatchNorm statistics are folded in fp32, even
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


def _model_error(identity: ModelIdentity, error: Exception) -> ModelError:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    if identity.pretrained and "download" in reason.lower():
        return ModelError(
            f"could not download the weights of {identity.describe()} ({reason}). Offline? Fetch the checkpoint "
            "on a connected machine (open_clip_pytorch_model.bin from the model's Hugging Face page) and pass "
            f"it: --model {identity.architecture} --pretrained /path/to/open_clip_pytorch_model.bin"
        )
    return ModelError(f"could not load {identity.describe()}: {reason}")
