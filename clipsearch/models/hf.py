"""The Hugging Face `transformers` backend: CLIPModel, ChineseCLIPModel, SiglipModel and their kin, named
`hf:REPO` or `hf:DIRECTORY` (clipsearch.models.hf_identity).

Embeddings are the models' own get_image_features/get_text_features, L2-normalised, with each model's
own preprocessing read from its image processor and its own tokenizer. transformers and torch take
seconds to import, so this module is imported only where such a model is loaded.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.errors import ModelError, UsageError
from clipsearch.models.device import DEFAULT_BATCH_SIZE, Device, Precision, pick_device, torch_quantisation_wanted
from clipsearch.models.hf_identity import PREFIX, repository_snapshot
from clipsearch.models.identity import ModelIdentity
from clipsearch.models.preprocessing import Preprocessing
from clipsearch.models.query_model_export import ExportReport

INT8_FAITHFUL_COSINE = 0.99  # below this on the probe pictures, int8 is not used (docs/speed.md)
_RESAMPLE = {1: "lanczos", 2: "bilinear", 3: "bicubic"}  # PIL's numbering, which image processors use


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' load reports (unused weights, deprecations) are for developers, not for searches."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" from the disk; downloads keep huggingface_hub's bars
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(previous)
        hf_logging.enable_progress_bar()


def model_folder(identity: ModelIdentity) -> Path:
    if identity.checkpoint_path:
        return Path(identity.checkpoint_path)
    return repository_snapshot(identity.architecture[len(PREFIX):], identity.pretrained)


class HuggingFaceEncoder:
    """One transformers CLIP-family model on one device, fed uint8 pixels already at its size."""

    def __init__(self, identity: ModelIdentity, device: Device | str = Device.auto) -> None:
        import torch
        import transformers

        self.identity = identity
        self.device = pick_device(device)
        self.folder = model_folder(identity)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        try:
            with quiet_transformers():
                model = transformers.AutoModel.from_pretrained(self.folder, dtype=dtype)
                self._tokenizer = transformers.AutoTokenizer.from_pretrained(self.folder)
                processor = transformers.AutoImageProcessor.from_pretrained(self.folder)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            raise ModelError(f"could not load {identity.describe()} with transformers: {reason}") from error
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ModelError(f"{identity.describe()} is a {type(model).__name__}, not a CLIP-family model (it has "
                             "no get_image_features/get_text_features)")
        self._model = model.to(self.device).eval()
        self.software = f"transformers {transformers.__version__}"
        self.preprocessing = preprocessing_of(processor)
        self.model_type = str(getattr(model.config, "model_type", ""))
        self.logit_scale = float(model.logit_scale.exp().item()) if hasattr(model, "logit_scale") else 100.0
        self._dtype = dtype
        self.precision = "fp16" if self.device == "cuda" else "fp32"
        self._max_length = text_length(model.config, self._tokenizer)
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(self.preprocessing.mean, device=self.device).view(shape) * 255
        self._std = torch.tensor(self.preprocessing.std, device=self.device).view(shape) * 255

    @property
    def default_batch_size(self) -> int:
        return DEFAULT_BATCH_SIZE.get(self.device, 32)

    @property
    def pads_to_length(self) -> bool:
        """SigLIP was trained on texts padded to full length, and pools the last position: it must see them so."""
        return self.model_type.startswith("siglip")

    def tokens(self, texts: Sequence[str]) -> dict[str, Any]:
        padding = "max_length" if self.pads_to_length else True
        tokens = dict(self._tokenizer(list(texts), padding=padding, truncation=True, max_length=self._max_length,
                                      return_tensors="pt"))
        # SigLIP's own processor gives ids alone: its padding is attended to, as in training.
        return {"input_ids": tokens["input_ids"]} if self.pads_to_length else tokens

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            inputs = {key: value.to(self.device) for key, value in self.tokens(texts).items()}
            return _normalised(_features(self._model.get_text_features(**inputs)))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = torch.from_numpy(pixels).to(self.device).permute(0, 3, 1, 2).float()
            batch = ((batch - self._mean) / self._std).to(self._dtype)
            return _normalised(_features(self._model.get_image_features(pixel_values=batch)))

    def image_tower(self) -> Any:
        """A torch module from normalised NCHW pixels to the image features (clipsearch.models.openvino)."""
        import torch

        class ImageTower(torch.nn.Module):
            def __init__(self, model: Any) -> None:
                super().__init__()
                self.model = model

            def forward(self, pixels: torch.Tensor) -> torch.Tensor:
                return _features(self.model.get_image_features(pixel_values=pixels))

        return ImageTower(self._model).eval()

    def use_precision(self, precision: Precision | str) -> None:
        wanted = torch_quantisation_wanted(precision, self.device, self.precision)
        if wanted is None:
            return
        cosine = self._quantize_image_mlps()
        if cosine is None and wanted is Precision.int8:
            raise UsageError("--precision int8: this model's image tower has no MLP layers to quantise, or this "
                             "torch cannot; use --precision fp32")
        if cosine is not None and cosine < INT8_FAITHFUL_COSINE and wanted is Precision.int8:
            raise UsageError(f"--precision int8: this model's int8 image embeddings are only {cosine:.3f} cosine "
                             "from its own; use --precision fp32")

    def _quantize_image_mlps(self) -> float | None:
        """int8 weights for the vision tower's MLPs, kept only when probe pictures embed within 0.99 cosine of
        fp32; returns that cosine (None when there was nothing to quantise)."""
        import torch

        try:
            from torch.ao.quantization import quantize_dynamic
        except ImportError:
            return None
        vision = getattr(self._model, "vision_model", None)
        if vision is None:
            return None
        names = {name for name, module in vision.named_modules()
                 if type(module) is torch.nn.Linear and ".mlp." in f".{name}"}
        if not names:
            return None
        probes = _probe_pixels(self.preprocessing.image_size)
        reference = self.embed_pixels(probes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantised = quantize_dynamic(vision, qconfig_spec=names, dtype=torch.qint8, inplace=False)
        self._model.vision_model = quantised
        cosine = float(np.min(np.sum(self.embed_pixels(probes) * reference, axis=1)))
        if cosine >= INT8_FAITHFUL_COSINE:
            self.precision = "int8"
        else:
            self._model.vision_model = vision
        return cosine

    def export_query_model(self, folder: Path) -> ExportReport:
        if self.precision == "int8":
            raise RuntimeError("the query model must be exported before int8 quantisation changes the weights")
        from clipsearch.models.hf_export import export_hf_query_model

        return export_hf_query_model(self, folder)


def _features(output: Any) -> Any:
    """transformers 4 returns the projected features; 5 returns an output whose pooler_output they are."""
    return output if hasattr(output, "float") else output.pooler_output


def _normalised(features: Any) -> np.ndarray:
    import torch

    return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()


def _probe_pixels(size: int) -> np.ndarray:
    """Pictures with structure at several scales: smooth gradients with noise and blocks."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    pictures = []
    for k in range(4):
        base = (ramp[None, :, None] * (k + 1) % 256 + ramp[:, None, None] * (3 - k) / 3) / 2
        blocks = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((math.ceil(size / 8), math.ceil(size / 8), 1)))
        picture = 0.5 * base + 0.4 * blocks[:size, :size] + rng.normal(0, 12, (size, size, 3))
        pictures.append(np.clip(picture, 0, 255).astype(np.uint8))
    return np.stack(pictures)


def preprocessing_of(processor: Any) -> Preprocessing:
    """An image processor's resize, crop and normalisation, in clipsearch's terms."""
    size = getattr(processor, "size", None) or {}
    size = dict(size) if not isinstance(size, int) else {"shortest_edge": size}
    crop = getattr(processor, "crop_size", None) or {}
    crop = dict(crop) if not isinstance(crop, int) else {"height": crop, "width": crop}
    if getattr(processor, "do_center_crop", False) and crop:
        image_size, mode = int(crop.get("height") or crop.get("width")), "shortest"
    elif "shortest_edge" in size:
        image_size, mode = int(size["shortest_edge"]), "shortest"
    else:
        image_size, mode = int(size.get("height") or size.get("width") or 224), "squash"
    resample = getattr(processor, "resample", 3)
    interpolation = _RESAMPLE.get(int(getattr(resample, "value", resample) or 3), "bicubic")
    return Preprocessing(image_size=image_size, mean=tuple(float(m) for m in processor.image_mean),
                         std=tuple(float(s) for s in processor.image_std), interpolation=interpolation,
                         resize_mode=mode)


def text_length(config: Any, tokenizer: Any) -> int:
    """How many tokens a text may have: the text tower's positions, unless the tokenizer says fewer."""
    text_config = getattr(config, "text_config", None)
    positions = int(getattr(text_config, "max_position_embeddings", 0) or 0) or 77
    declared = int(getattr(tokenizer, "model_max_length", positions) or positions)
    return min(positions, declared) if declared < 100_000 else positions
