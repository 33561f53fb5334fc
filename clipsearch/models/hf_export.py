"""Writing the query model of a transformers model (clipsearch.models.hf), so its queries skip torch too.

Text towers: CLIP's and SigLIP's (pre-norm, like open_clip's: the same numpy runner, with the weights
renamed and q/k/v packed) and Chinese-CLIP's BERT (clipsearch.models.query_bert). Image towers: the
CLIP-style ViT of CLIP and Chinese-CLIP; SigLIP's attention-pooled one is left to torch. The tokenizer
is the model's own, saved as tokenizer.json for the `tokenizers` library. As for open_clip models, the
copy is published only when its ids and embeddings match the model's (cosine >= 0.999).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.models.query_bert import TOKENIZER_FILE
from clipsearch.models.query_model import FORMAT_VERSION, MANIFEST, QueryModel
from clipsearch.models.query_model_export import (
    FAITHFUL_COSINE,
    ExportReport,
    Unsupported,
    publish_checked,
    write_weights,
)

_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}
_PROBE_TEXTS = ["a photo of a dog", "Sunset over the BEACH!", "红色的圆形", "一个绿色的三角形和一个黄色的星星",
                "café, 東京 at night 🌃", "a very long description " * 12]


def _activation(config: Any) -> str:
    name = str(getattr(config, "hidden_act", ""))
    if name not in _ACTIVATIONS:
        raise Unsupported(f"activation {name}")
    return _ACTIVATIONS[name]


def _clip_layers(layers: Any, prefix: str, config: Any, tensors: dict[str, Any]) -> dict:
    """A stack of pre-norm CLIP encoder layers, under open_clip's names (q, k and v packed into one)."""
    import torch

    layers = list(layers)
    if not layers or not all(hasattr(layer, "self_attn") and hasattr(layer, "layer_norm1") for layer in layers):
        raise Unsupported("encoder layers of another kind")
    attention = layers[0].self_attn
    for index, layer in enumerate(layers):
        a, p = layer.self_attn, f"{prefix}.{index}"
        tensors.update({
            f"{p}.ln_1.weight": layer.layer_norm1.weight, f"{p}.ln_1.bias": layer.layer_norm1.bias,
            f"{p}.attn.in_proj_weight": torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
            f"{p}.attn.in_proj_bias": torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]),
            f"{p}.attn.out_proj.weight": a.out_proj.weight, f"{p}.attn.out_proj.bias": a.out_proj.bias,
            f"{p}.ln_2.weight": layer.layer_norm2.weight, f"{p}.ln_2.bias": layer.layer_norm2.bias,
            f"{p}.c_fc.weight": layer.mlp.fc1.weight, f"{p}.c_fc.bias": layer.mlp.fc1.bias,
            f"{p}.c_proj.weight": layer.mlp.fc2.weight, f"{p}.c_proj.bias": layer.mlp.fc2.bias,
        })
    return {"layers": len(layers), "heads": int(attention.num_heads), "eps": float(layers[0].layer_norm1.eps),
            "activation": _activation(config), "width": int(attention.embed_dim)}


def _projection(linear: Any, tower: str, tensors: dict[str, Any]) -> None:
    tensors[f"{tower}.projection"] = linear.weight.T
    if getattr(linear, "bias", None) is not None:
        tensors[f"{tower}.projection_bias"] = linear.bias


def _clip_text(model: Any, text: Any, siglip: bool, tensors: dict[str, Any]) -> dict:
    spec = _clip_layers(text.encoder.layers, "text.blocks", text.config, tensors)
    embeddings = text.embeddings
    tensors.update({"text.token_embedding": embeddings.token_embedding.weight,
                    "text.positional_embedding": embeddings.position_embedding.weight,
                    "text.ln_final.weight": text.final_layer_norm.weight,
                    "text.ln_final.bias": text.final_layer_norm.bias})
    _projection(text.head if siglip else model.text_projection, "text", tensors)
    # CLIP pools its end-of-text token (the highest id in OpenAI's vocabulary, which transformers marks with the
    # legacy id 2); SigLIP its last position, after padding to full length.
    eos = getattr(text, "eos_token_id", 2)
    pool = {"pool": "last"} if siglip else {"pool": "argmax"} if eos == 2 else {"pool": "eos", "eos_id": int(eos)}
    spec.update(**pool, causal=not siglip, context_length=int(embeddings.position_embedding.weight.shape[0]))
    return spec


def _bert_text(model: Any, text: Any, tensors: dict[str, Any]) -> dict:
    embeddings, layers = text.embeddings, list(text.encoder.layer)
    tensors.update({"text.word_embeddings": embeddings.word_embeddings.weight,
                    "text.position_embeddings": embeddings.position_embeddings.weight,
                    "text.token_type_embeddings": embeddings.token_type_embeddings.weight,
                    "text.embeddings_ln.weight": embeddings.LayerNorm.weight,
                    "text.embeddings_ln.bias": embeddings.LayerNorm.bias})
    for index, layer in enumerate(layers):
        p, attention = f"text.layers.{index}", layer.attention
        parts = {"q": attention.self.query, "k": attention.self.key, "v": attention.self.value,
                 "attn_out": attention.output.dense, "fc1": layer.intermediate.dense, "fc2": layer.output.dense}
        for name, linear in parts.items():
            tensors[f"{p}.{name}.weight"], tensors[f"{p}.{name}.bias"] = linear.weight, linear.bias
        for name, norm in {"attn_ln": attention.output.LayerNorm, "mlp_ln": layer.output.LayerNorm}.items():
            tensors[f"{p}.{name}.weight"], tensors[f"{p}.{name}.bias"] = norm.weight, norm.bias
    _projection(model.text_projection, "text", tensors)
    config = text.config
    return {"kind": "bert", "layers": len(layers), "heads": int(config.num_attention_heads),
            "eps": float(config.layer_norm_eps), "activation": _activation(config), "pool": "first",
            "causal": False, "context_length": int(config.max_position_embeddings)}


def _text_tower(model: Any, model_type: str, tensors: dict[str, Any]) -> dict:
    text = model.text_model
    if model_type == "chinese_clip":
        return _bert_text(model, text, tensors)
    if model_type in ("clip", "siglip"):
        return _clip_text(model, text, model_type == "siglip", tensors)
    raise Unsupported(f"a {model_type} text tower")


def _image_tower(model: Any, model_type: str, tensors: dict[str, Any]) -> dict:
    if model_type not in ("clip", "chinese_clip"):
        raise Unsupported(f"a {model_type} image tower")
    vision = model.vision_model
    embeddings = vision.embeddings
    conv = embeddings.patch_embedding
    if conv.bias is not None or conv.kernel_size != conv.stride or conv.padding != (0, 0):
        raise Unsupported("a patch embedding of another shape")
    spec = _clip_layers(vision.encoder.layers, "image.blocks", vision.config, tensors)
    spec.update(patch_size=int(conv.kernel_size[0]), pool="tok", final_ln_after_pool=False)
    tensors.update({"image.patch_weight": conv.weight, "image.class_embedding": embeddings.class_embedding,
                    "image.positional_embedding": embeddings.position_embedding.weight,
                    "image.ln_pre.weight": vision.pre_layrnorm.weight, "image.ln_pre.bias": vision.pre_layrnorm.bias,
                    "image.ln_post.weight": vision.post_layernorm.weight,
                    "image.ln_post.bias": vision.post_layernorm.bias})
    _projection(model.visual_projection, "image", tensors)
    return spec


def export_hf_query_model(encoder: Any, folder: Path) -> ExportReport:
    """Write the query model of a loaded HuggingFaceEncoder to `folder`, once its ids and embeddings are checked."""
    model, tokenizer, model_type = encoder._model, encoder._tokenizer, encoder.model_type
    tensors: dict[str, Any] = {}
    try:
        if not getattr(tokenizer, "is_fast", False):
            raise Unsupported("a tokenizer without a fast (tokenizers) version")
        manifest: dict[str, Any] = {
            "version": FORMAT_VERSION, "identity": encoder.identity.to_dict(),
            "text": _text_tower(model, model_type, tensors), "logit_scale": encoder.logit_scale,
            "tokenizer": {"kind": "tokenizers", "max_length": encoder._max_length,
                          "pad_to_max": encoder.pads_to_length, "pad_id": tokenizer.pad_token_id or 0}}
    except (Unsupported, AttributeError) as error:
        return ExportReport(False, False, f"text tower: {error}")
    reason = None
    image_tensors: dict[str, Any] = {}
    try:
        manifest["image"] = _image_tower(model, model_type, image_tensors)
        manifest["preprocessing"] = encoder.preprocessing.__dict__
        tensors.update(image_tensors)
    except (Unsupported, AttributeError) as error:
        reason = f"image tower: {error}"

    def write_and_check(staging: Path) -> tuple[int, str | None]:
        size = write_weights(staging, manifest, tensors)
        (staging / TOKENIZER_FILE).write_text(tokenizer.backend_tokenizer.to_str())
        (staging / MANIFEST).write_text(json.dumps(manifest))
        return size, _check_faithful(QueryModel(staging, manifest), encoder)

    return publish_checked(folder, write_and_check, "image" in manifest, reason)


def _check_faithful(copy: QueryModel, encoder: Any) -> str | None:
    for text in _PROBE_TEXTS:
        if copy._tokenizer(text) != encoder.tokens([text])["input_ids"][0].tolist():
            return "the tokenizer does not match the model's"
    cosine = float(np.min(np.sum(copy.embed_texts(_PROBE_TEXTS) * encoder.embed_texts(_PROBE_TEXTS), axis=1)))
    if not cosine >= FAITHFUL_COSINE:
        return f"the numpy text tower drifts from the model (cosine {cosine:.4f})"
    if copy.embeds_images:
        size = encoder.preprocessing.image_size
        pixels = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
        cosine = float(np.min(np.sum(copy.embed_pixels(pixels) * encoder.embed_pixels(pixels), axis=1)))
        if not cosine >= FAITHFUL_COSINE:
            return f"the numpy image tower drifts from the model (cosine {cosine:.4f})"
    return None
