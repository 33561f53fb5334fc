"""Writing the query model from a loaded open_clip model, and remembering what came of it.

The copy is published only after its numpy forward pass is checked against the model's own
embeddings, so a tower of a shape clipsearch.models.query_model does not know is simply not
written, and queries load torch as before. What came of the last attempt (written, or why not,
with which open_clip) is recorded beside it, so that a model that cannot be copied is not tried
again by every run until the model or open_clip changes, and `status` can say why.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.filesystem import read_json, remove_leftovers, temporary_name, write_json_atomically
from clipsearch.models.identity import ModelIdentity
from clipsearch.models.preprocessing import Preprocessing
from clipsearch.models.query_model import FORMAT_VERSION, MANIFEST, VOCABULARY, WEIGHTS, QueryModel, seal

# A tower whose export is wrong in structure lands far below this; fp16 storage costs about 1e-6.
FAITHFUL_COSINE = 0.999


class Unsupported(Exception):
    """The model has a part the numpy query model cannot run; it is not exported."""


def _stored_dtype(name: str) -> Any:
    # Every text query runs the text transformer, and widening its float16 weights is a large share of a fresh
    # process's time: those are kept as float32. The token table (only a few rows are read) and the image tower
    # (a rarer query, and twice the size as float32) stay float16.
    import torch

    return torch.float32 if name.startswith("text.") and name != "text.token_embedding" else torch.float16


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


@dataclass(frozen=True)
class ExportReport:
    text: bool
    image: bool
    reason: str | None = None  # why a tower was left out
    size_bytes: int = 0


def export_query_model(model: Any, tokenizer: Any, preprocessing: Preprocessing, identity: ModelIdentity,
                       folder: Path) -> ExportReport:
    """Write the query model of a loaded open_clip model to `folder`, once its embeddings are checked."""
    tensors: dict[str, Any] = {}
    try:
        manifest: dict[str, Any] = {"version": FORMAT_VERSION, "identity": identity.to_dict(),
                                    "text": _text_tower(model, tokenizer, tensors),
                                    "logit_scale": float(model.logit_scale.exp().item())}
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

    def write_and_check(staging: Path) -> tuple[int, str | None]:
        size = _write_tensors(staging, manifest, tensors)
        return size, _check_faithful(QueryModel(staging, manifest), model, tokenizer, preprocessing)

    return publish_checked(folder, write_and_check, "image" in manifest, reason)


def publish_checked(folder: Path, write_and_check: Callable[[Path], tuple[int, str | None]], image: bool,
                    reason: str | None) -> ExportReport:
    """Write a query model into a staging folder beside `folder` and swap it in only if its check passes."""
    remove_leftovers(folder)  # from an export that was killed
    staging = temporary_name(folder)
    staging.mkdir(parents=True)
    try:
        try:
            size, problem = write_and_check(staging)
        except (OSError, KeyboardInterrupt):
            raise
        except Exception as error:  # a cache: a tower the numpy runner gets wrong is not exported, never fatal
            size, problem = 0, f"the numpy copy failed its check ({type(error).__name__}: {error})"
        if problem:
            shutil.rmtree(staging, ignore_errors=True)
            return ExportReport(False, False, problem)
        seal(staging)  # every file, and the settings, as checked: a query uses nothing else
        publish(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportReport(True, image, reason, size)


def _write_tensors(staging: Path, manifest: dict[str, Any], tensors: dict[str, Any]) -> int:
    """Write the weights, CLIP's vocabulary and the manifest into `staging`; returns the weights' size."""
    size = write_weights(staging, manifest, tensors)
    (staging / VOCABULARY).write_bytes(gzip.decompress(_vocabulary_file().read_bytes()))
    (staging / MANIFEST).write_text(json.dumps(manifest))
    return size


def write_weights(staging: Path, manifest: dict[str, Any], tensors: dict[str, Any]) -> int:
    """Write the tensors into `staging`'s weights file and describe them in `manifest`; returns the size."""
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
    return offset


@dataclass(frozen=True)
class QueryModelOutcome:
    """What the last attempt to write a database's query model gave, for which model and software."""

    identity: dict
    software: str  # e.g. "open_clip 3.3.0": another version may export what this one could not
    format: int
    text: bool
    image: bool
    reason: str | None
    size_bytes: int = 0

    def applies_to(self, identity: ModelIdentity, software: str) -> bool:
        return (self.format == FORMAT_VERSION and self.software == software
                and ModelIdentity.from_dict(self.identity).same_model(identity))


def read_outcome(path: Path) -> QueryModelOutcome | None:
    data = read_json(path)
    try:
        return QueryModelOutcome(**data) if isinstance(data, dict) else None
    except TypeError:
        return None


def refresh_query_model(encoder: Any, folder: Path, outcome_file: Path,
                        announce: Callable[[], None] = lambda: None) -> QueryModelOutcome | None:
    """Make sure `folder` holds the encoder's query model, unless an attempt with this model and software failed.

    Returns the new outcome, or None when nothing had to be done. A cache: failing to write it is not an error.
    """
    identity, software = encoder.identity, encoder.software
    if QueryModel.open(folder, identity) is not None:  # sound and loadable, as a query will find it
        return None
    previous = read_outcome(outcome_file)
    if previous is not None and previous.applies_to(identity, software) and not previous.text:
        return None  # known not to work with this model and this software: retried when either changes
    if not os.access(folder.parent, os.W_OK):
        return None  # a database shared read-only: its readers load the model each time, and write nothing
    announce()
    try:
        report = encoder.export_query_model(folder)
    except OSError:
        return None  # a full disk or a read-only folder passes: try again next time
    outcome = QueryModelOutcome(identity.to_dict(), software, FORMAT_VERSION, report.text, report.image,
                                report.reason, report.size_bytes)
    with contextlib.suppress(OSError):
        write_json_atomically(outcome_file, asdict(outcome))
    return outcome


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


def publish(staging: Path, folder: Path) -> None:
    """Swap the checked copy into place; readers holding the old one keep their open (memory-mapped) files."""
    retired = folder.with_name(f"{folder.name}.old{os.getpid()}")
    if folder.exists():
        os.replace(folder, retired)
    os.replace(staging, folder)
    with contextlib.suppress(OSError):
        shutil.rmtree(retired)
