"""The model's towers as plain numpy, so that a query process needs neither torch nor open_clip.

Importing torch and open_clip costs a fresh process about 4 s, several times what the rest of
a query takes. Whenever clipsearch has an open_clip model loaded anyway (indexing, or a query
that had to load it), `export_query_model` copies the text tower, and the image tower when it
is a plain ViT, into one file beside the catalogue. It publishes the copy only after
checking that the numpy forward pass reproduces the model's own embeddings, so a tower of a
shape this module does not know is simply not exported and queries load torch as before.

The copy is a cache, like the HNSW file: deleting it costs one slow query.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.encoder import Preprocessing
from clipsearch.models import ModelIdentity
from clipsearch.tokenizer import ClipTokenizer
from clipsearch.vectors import fingerprint

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
WEIGHTS = "weights.bin"
VOCABULARY = "bpe_merges.txt"  # open_clip's vocabulary file, decompressed: 17 ms less per query
# A tower whose export is wrong in structure lands far below this; fp16 storage costs about 1e-6.
FAITHFUL_COSINE = 0.999


class Unsupported(Exception):
    """The model has a part this module cannot run in numpy; it is not exported."""


# ---------------------------------------------------------------------------------------------- running


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7): numpy has no erf, and scipy is not worth a dependency.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


_ACTIVATIONS = {
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))),
    "quick_gelu": lambda x: x / (1.0 + np.exp(-1.702 * x)),
}


class _Weights:
    """Named arrays in one memory-mapped file; float16 ones are widened to float32 once, on first use."""

    def __init__(self, path: Path, table: dict[str, list]) -> None:
        self._file = np.memmap(path, dtype=np.uint8, mode="r")
        self._table = table
        self._wide: dict[str, np.ndarray] = {}

    def __call__(self, name: str) -> np.ndarray:
        if name not in self._wide:
            self._wide[name] = self.raw(name).astype(np.float32, copy=False)
        return self._wide[name]

    def raw(self, name: str) -> np.ndarray:
        offset, shape, dtype = self._table[name]
        return np.frombuffer(self._file, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape)

    def has(self, name: str) -> bool:
        return name in self._table


def _stored_dtype(name: str) -> Any:
    # Every text query runs the text transformer, and widening its 38M float16 weights (ViT-B-32) cost a fresh
    # process 0.13 s: those are kept as float32. The token table (only a few rows are read) and the image tower
    # (a rarer query, and 350 MB as float32) stay float16.
    import torch

    return torch.float32 if name.startswith("text.") and name != "text.token_embedding" else torch.float16


def _transformer(x: np.ndarray, w: _Weights, prefix: str, spec: dict, mask: np.ndarray | None) -> np.ndarray:
    """open_clip's pre-norm residual attention blocks, for x of shape (batch, tokens, width)."""
    heads, eps, activation = spec["heads"], spec["eps"], _ACTIVATIONS[spec["activation"]]
    batch, tokens, width = x.shape
    head_width = width // heads
    for layer in range(spec["layers"]):
        p = f"{prefix}.{layer}"
        h = _layer_norm(x, w(f"{p}.ln_1.weight"), w(f"{p}.ln_1.bias"), eps)
        qkv = h @ w(f"{p}.attn.in_proj_weight").T + w(f"{p}.attn.in_proj_bias")
        q, k, v = (part.reshape(batch, tokens, heads, head_width).transpose(0, 2, 1, 3)
                   for part in np.split(qkv, 3, axis=-1))
        scores = (q / math.sqrt(head_width)) @ k.transpose(0, 1, 3, 2)
        if mask is not None:
            scores = scores + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attended = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        attended = attended.transpose(0, 2, 1, 3).reshape(batch, tokens, width)
        h = attended @ w(f"{p}.attn.out_proj.weight").T + w(f"{p}.attn.out_proj.bias")
        x = x + (h * w(f"{p}.ls_1") if w.has(f"{p}.ls_1") else h)
        h = _layer_norm(x, w(f"{p}.ln_2.weight"), w(f"{p}.ln_2.bias"), eps)
        h = activation(h @ w(f"{p}.c_fc.weight").T + w(f"{p}.c_fc.bias"))
        h = h @ w(f"{p}.c_proj.weight").T + w(f"{p}.c_proj.bias")
        x = x + (h * w(f"{p}.ls_2") if w.has(f"{p}.ls_2") else h)
    return x


def _normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class QueryModel:
    """Embeds query texts (and images, for ViT models) in numpy, from an exported copy of the model."""

    def __init__(self, folder: Path, manifest: dict) -> None:
        self._weights = _Weights(folder / WEIGHTS, manifest["tensors"])
        self._text = manifest["text"]
        self._image = manifest.get("image")
        self._tokenizer = ClipTokenizer(folder / VOCABULARY, self._text["context_length"])
        self.preprocessing = Preprocessing(**manifest["preprocessing"]) if self._image else None

    @classmethod
    def open(cls, folder: Path, identity: ModelIdentity) -> QueryModel | None:
        """The exported copy of this model, or None if there is none (or it is for another model, or damaged)."""
        manifest = read_manifest(folder, identity)
        if manifest is None:
            return None
        try:
            return cls(folder, manifest)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def embeds_images(self) -> bool:
        return self._image is not None

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        spec, w = self._text, self._weights
        features = []
        for text in texts:
            tokens = np.array(self._tokenizer(text))
            pool_at = {"argmax": int(tokens.argmax()), "first": 0, "last": len(tokens) - 1}[spec["pool"]]
            if spec["causal"]:
                tokens = tokens[:pool_at + 1]  # nothing after the pooled token can reach it through a causal mask
            length = len(tokens)
            x = w.raw("text.token_embedding")[tokens].astype(np.float32) + w("text.positional_embedding")[:length]
            mask = np.triu(np.full((length, length), -np.inf, np.float32), 1) if spec["causal"] else None
            x = _transformer(x[None], w, "text.blocks", spec, mask)[0]
            pooled = _layer_norm(x[pool_at], w("text.ln_final.weight"), w("text.ln_final.bias"), spec["eps"])
            features.append(self._project(pooled, "text"))
        return _normalised(np.stack(features))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3 at the model's size -> L2-normalised float32 N x dim."""
        if self._image is None or self.preprocessing is None:
            raise ValueError("this export has no image tower")
        spec, w, prep = self._image, self._weights, self.preprocessing
        batch, size = pixels.shape[0], pixels.shape[1]
        patch = spec["patch_size"]
        grid = size // patch
        x = (pixels.astype(np.float32) - np.array(prep.mean, np.float32) * 255) / (np.array(prep.std, np.float32) * 255)
        # Non-overlapping patches flattened in the conv weight's (channel, row, column) order.
        patches = x.reshape(batch, grid, patch, grid, patch, 3).transpose(0, 1, 3, 5, 2, 4)
        patches = patches.reshape(batch, grid * grid, 3 * patch * patch)
        x = patches @ w("image.patch_weight").reshape(spec["width"], -1).T
        cls = np.broadcast_to(w("image.class_embedding"), (batch, 1, spec["width"]))
        x = np.concatenate([cls, x], axis=1) + w("image.positional_embedding")
        if w.has("image.ln_pre.weight"):
            x = _layer_norm(x, w("image.ln_pre.weight"), w("image.ln_pre.bias"), spec["eps"])
        x = _transformer(x, w, "image.blocks", spec, None)
        norm = (w("image.ln_post.weight"), w("image.ln_post.bias"), spec["eps"])
        if spec["pool"] == "avg" and not spec["final_ln_after_pool"]:
            pooled = _layer_norm(x, *norm)[:, 1:].mean(axis=1)
        else:
            pooled = x[:, 1:].mean(axis=1) if spec["pool"] == "avg" else x[:, 0]
            pooled = _layer_norm(pooled, *norm)
        return _normalised(self._project(pooled, "image"))

    def _project(self, x: np.ndarray, tower: str) -> np.ndarray:
        w = self._weights
        if w.has(f"{tower}.projection"):
            x = x @ w(f"{tower}.projection")
        if w.has(f"{tower}.projection_bias"):
            x = x + w(f"{tower}.projection_bias")
        return x


# ---------------------------------------------------------------------------------------------- exporting


def _activation_name(module: Any) -> str:
    import torch

    name = type(module).__name__
    if isinstance(module, torch.nn.GELU):
        return "gelu" if module.approximate == "none" else "gelu_tanh"
    if name == "QuickGELU":
        return "quick_gelu"
    raise Unsupported(f"activation {name}")


def _blocks(transformer: Any, prefix: str, tensors: dict[str, Any]) -> dict:
    """Collect a stack of open_clip ResidualAttentionBlocks; refuse any variant the numpy path does not run."""
    import torch

    blocks = list(transformer.resblocks)
    if not blocks or any(type(b).__name__ != "ResidualAttentionBlock" or hasattr(b, "ln_1_kv") for b in blocks):
        raise Unsupported("transformer blocks of another kind")
    first = blocks[0]
    spec = {"layers": len(blocks), "heads": first.attn.num_heads, "eps": float(first.ln_1.eps),
            "activation": _activation_name(first.mlp.gelu), "width": first.attn.embed_dim}
    for index, block in enumerate(blocks):
        attention = block.attn
        if not attention._qkv_same_embed_dim or attention.in_proj_bias is None or attention.out_proj.bias is None:
            raise Unsupported("attention without packed biased projections")
        if _activation_name(block.mlp.gelu) != spec["activation"] or float(block.ln_1.eps) != spec["eps"]:
            raise Unsupported("blocks that differ from one another")
        p = f"{prefix}.{index}"
        tensors.update({
            f"{p}.ln_1.weight": block.ln_1.weight, f"{p}.ln_1.bias": block.ln_1.bias,
            f"{p}.attn.in_proj_weight": attention.in_proj_weight, f"{p}.attn.in_proj_bias": attention.in_proj_bias,
            f"{p}.attn.out_proj.weight": attention.out_proj.weight, f"{p}.attn.out_proj.bias": attention.out_proj.bias,
            f"{p}.ln_2.weight": block.ln_2.weight, f"{p}.ln_2.bias": block.ln_2.bias,
            f"{p}.c_fc.weight": block.mlp.c_fc.weight, f"{p}.c_fc.bias": block.mlp.c_fc.bias,
            f"{p}.c_proj.weight": block.mlp.c_proj.weight, f"{p}.c_proj.bias": block.mlp.c_proj.bias,
        })
        for scale in ("ls_1", "ls_2"):
            module = getattr(block, scale)
            if not isinstance(module, torch.nn.Identity):
                tensors[f"{p}.{scale}"] = module.gamma
    return spec


def _projection(projection: Any, tower: str, tensors: dict[str, Any]) -> None:
    import torch

    if projection is None:
        return
    if isinstance(projection, torch.nn.Linear):
        tensors[f"{tower}.projection"] = projection.weight.T
        if projection.bias is not None:
            tensors[f"{tower}.projection_bias"] = projection.bias
    else:
        tensors[f"{tower}.projection"] = projection


def _text_tower(model: Any, tokenizer: Any, tensors: dict[str, Any]) -> dict:
    text = getattr(model, "text", model)  # open_clip's CustomTextCLIP keeps its text tower apart
    if type(tokenizer).__name__ != "SimpleTokenizer" or len(tokenizer.all_special_ids) != 2:
        raise Unsupported("a tokenizer other than CLIP's BPE")
    if getattr(tokenizer, "reduction_fn", None) is not None or tokenizer.clean_fn.__name__ != "_clean_lower":
        raise Unsupported("a tokenizer with another cleaning or reduction")
    if getattr(text, "cls_emb", None) is not None or getattr(text, "use_pad_mask", False):
        raise Unsupported("a text tower with a class token or padding mask")
    pool = getattr(text, "pool_type", None) or getattr(model, "text_pool_type", None)
    if pool not in ("argmax", "first", "last"):
        raise Unsupported(f"text pooling {pool}")
    spec = _blocks(text.transformer, "text.blocks", tensors)
    spec.update(context_length=int(tokenizer.context_length), pool=pool, causal=text.attn_mask is not None)
    tensors.update({"text.token_embedding": text.token_embedding.weight,
                    "text.positional_embedding": text.positional_embedding,
                    "text.ln_final.weight": text.ln_final.weight, "text.ln_final.bias": text.ln_final.bias})
    _projection(text.text_projection, "text", tensors)
    return spec


def _image_tower(model: Any, tensors: dict[str, Any]) -> dict:
    visual = model.visual
    if type(visual).__name__ != "VisionTransformer" or visual.attn_pool is not None:
        raise Unsupported("an image tower that is not a plain ViT")
    conv = visual.conv1
    if conv.bias is not None or conv.kernel_size != conv.stride or conv.padding != (0, 0) or conv.in_channels != 3:
        raise Unsupported("a patch embedding of another shape")
    if visual.pool_type not in ("tok", "avg"):
        raise Unsupported(f"image pooling {visual.pool_type}")
    spec = _blocks(visual.transformer, "image.blocks", tensors)
    spec.update(patch_size=int(conv.kernel_size[0]), pool=visual.pool_type,
                final_ln_after_pool=bool(visual.final_ln_after_pool))
    tensors.update({"image.patch_weight": conv.weight, "image.class_embedding": visual.class_embedding,
                    "image.positional_embedding": visual.positional_embedding,
                    "image.ln_post.weight": visual.ln_post.weight, "image.ln_post.bias": visual.ln_post.bias})
    if hasattr(visual.ln_pre, "weight"):
        tensors.update({"image.ln_pre.weight": visual.ln_pre.weight, "image.ln_pre.bias": visual.ln_pre.bias})
    _projection(visual.proj, "image", tensors)
    return spec


def read_manifest(folder: Path, identity: ModelIdentity) -> dict | None:
    """The manifest of a sound export of this model in `folder`, or None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("version") != FORMAT_VERSION:
            return None
        if not ModelIdentity.from_dict(manifest["identity"]).same_model(identity):
            return None
        # Size and a hash of head and tail, as for the HNSW file: catches truncation and overwrites cheaply.
        return manifest if list(fingerprint(folder / WEIGHTS)) == manifest["fingerprint"] else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class ExportReport:
    text: bool
    image: bool
    reason: str | None = None  # why a tower was left out
    size_bytes: int = 0


def export_query_model(model: Any, tokenizer: Any, preprocessing: Preprocessing, identity: ModelIdentity,
                       folder: Path) -> ExportReport:
    """Write the numpy copy of a loaded open_clip model to `folder`, once its embeddings are checked."""

    tensors: dict[str, Any] = {}
    try:
        manifest: dict[str, Any] = {"version": FORMAT_VERSION, "identity": identity.to_dict(),
                                    "text": _text_tower(model, tokenizer, tensors)}
    except (Unsupported, AttributeError) as error:
        return ExportReport(False, False, f"text tower: {error}")
    reason = None
    image_tensors: dict[str, Any] = {}
    try:
        manifest["image"] = _image_tower(model, image_tensors)
        manifest["preprocessing"] = preprocessing.__dict__
        tensors.update(image_tensors)
    except (Unsupported, AttributeError) as error:
        reason = f"image tower: {error}"
    for leftover in folder.parent.glob(f"{folder.name}.tmp*"):  # from an export that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    staging = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    staging.mkdir(parents=True)
    try:
        table, offset = {}, 0
        with (staging / WEIGHTS).open("wb") as handle:
            for name, tensor in tensors.items():
                array = tensor.detach().to("cpu", _stored_dtype(name)).contiguous().numpy()
                padding = -offset % 64  # aligned, so numpy and BLAS read the arrays in place
                handle.write(b"\0" * padding + array.tobytes())
                offset += padding
                table[name] = [offset, list(array.shape), array.dtype.str]
                offset += array.nbytes
        manifest["tensors"] = table
        manifest["fingerprint"] = list(fingerprint(staging / WEIGHTS))
        (staging / VOCABULARY).write_bytes(gzip.decompress(_vocabulary_file().read_bytes()))
        (staging / MANIFEST).write_text(json.dumps(manifest))
        copy = QueryModel(staging, manifest)
        problem = _check_faithful(copy, model, tokenizer, preprocessing)
        if problem:
            shutil.rmtree(staging, ignore_errors=True)
            return ExportReport(False, False, problem)
        _publish(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportReport(True, "image" in manifest, reason, offset)


def _vocabulary_file() -> Path:
    from open_clip.tokenizer import default_bpe

    return Path(default_bpe())


_PROBE_TEXTS = ["a photo of a dog", "Sunset over the BEACH!", "café, 東京 at night 🌃",
                "a very long description " * 12]


def _check_faithful(copy: QueryModel, model: Any, tokenizer: Any, preprocessing: Preprocessing) -> str | None:
    import torch

    device = next(model.parameters()).device
    if [copy._tokenizer(t) for t in _PROBE_TEXTS] != tokenizer(_PROBE_TEXTS).tolist():
        return "the tokenizer does not match open_clip's"
    with torch.inference_mode():
        reference = model.encode_text(tokenizer(_PROBE_TEXTS).to(device)).float()
        reference = torch.nn.functional.normalize(reference, dim=-1).cpu().numpy()
    cosine = float(np.min(np.sum(copy.embed_texts(_PROBE_TEXTS) * reference, axis=1)))
    if not cosine >= FAITHFUL_COSINE:
        return f"the numpy text tower drifts from the model (cosine {cosine:.4f})"
    if copy.embeds_images:
        size = preprocessing.image_size
        pixels = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
        mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1) * 255
        std = torch.tensor(preprocessing.std).view(1, 3, 1, 1) * 255
        batch = ((torch.from_numpy(pixels).permute(0, 3, 1, 2).float() - mean) / std)
        dtype = next(model.visual.parameters()).dtype
        with torch.inference_mode():
            reference = model.encode_image(batch.to(device, dtype)).float()
            reference = torch.nn.functional.normalize(reference, dim=-1).cpu().numpy()
        cosine = float(np.min(np.sum(copy.embed_pixels(pixels) * reference, axis=1)))
        if not cosine >= FAITHFUL_COSINE:
            return f"the numpy image tower drifts from the model (cosine {cosine:.4f})"
    return None


def _publish(staging: Path, folder: Path) -> None:
    """Swap the checked copy into place; readers holding the old one keep their open (memory-mapped) files."""
    retired = folder.with_name(f"{folder.name}.old{os.getpid()}")
    if folder.exists():
        os.replace(folder, retired)
    os.replace(staging, folder)
    with contextlib.suppress(OSError):
        shutil.rmtree(retired)
