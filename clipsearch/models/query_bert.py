"""The query model's parts for Hugging Face text towers: a BERT-style encoder (Chinese-CLIP's) in numpy, and
the model's own tokenizer through the `tokenizers` library, which needs no torch and gives the model's exact ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

TOKENIZER_FILE = "tokenizer.json"


class HubTokenizer:
    """A transformers fast tokenizer, saved as tokenizer.json, truncated (and padded, for SigLIP) as the model was."""

    def __init__(self, folder: Path, spec: dict) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(int(spec["max_length"]))
        if spec.get("pad_to_max"):
            self._tokenizer.enable_padding(length=int(spec["max_length"]), pad_id=int(spec["pad_id"]))

    def __call__(self, text: str) -> list[int]:
        return self._tokenizer.encode(text).ids


def bert_text(ids: np.ndarray, weights: Callable[[str], np.ndarray], spec: dict,
              activation: Callable[[np.ndarray], np.ndarray],
              layer_norm: Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray],
              linear: Callable[..., np.ndarray]) -> np.ndarray:
    """BERT's post-norm encoder over unpadded token ids (batch, tokens): the hidden state of every token."""
    w, eps, heads = weights, spec["eps"], spec["heads"]
    batch, tokens = ids.shape
    x = w("text.word_embeddings")[ids] + w("text.position_embeddings")[:tokens] + w("text.token_type_embeddings")[0]
    x = layer_norm(x, w("text.embeddings_ln.weight"), w("text.embeddings_ln.bias"), eps)
    width = x.shape[-1]
    head_width = width // heads
    for layer in range(spec["layers"]):
        p = f"text.layers.{layer}"
        q, k, v = (linear(x, w(f"{p}.{name}.weight"), w(f"{p}.{name}.bias"))
                   .reshape(batch, tokens, heads, head_width).transpose(0, 2, 1, 3) for name in ("q", "k", "v"))
        scores = (q / math.sqrt(head_width)) @ k.transpose(0, 1, 3, 2)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attended = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        attended = attended.transpose(0, 2, 1, 3).reshape(batch, tokens, width)
        x = layer_norm(x + linear(attended, w(f"{p}.attn_out.weight"), w(f"{p}.attn_out.bias")),
                       w(f"{p}.attn_ln.weight"), w(f"{p}.attn_ln.bias"), eps)
        h = activation(linear(x, w(f"{p}.fc1.weight"), w(f"{p}.fc1.bias")))
        x = layer_norm(x + linear(h, w(f"{p}.fc2.weight"), w(f"{p}.fc2.bias")), w(f"{p}.mlp_ln.weight"),
                       w(f"{p}.mlp_ln.bias"), eps)
    return x
