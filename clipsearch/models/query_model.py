"""The query model: a model's towers as plain numpy, so that a query process needs neither torch nor open_clip
(nor transformers).

Importing torch and open_clip costs a fresh process seconds, several times what the rest of a query
takes. Whenever clipsearch has an open_clip model loaded anyway (indexing, or a query that had to
load it), clipsearch.models.query_model_export copies the text tower, and the image tower when it
is a plain ViT, into one folder beside the catalogue, once it has checked that this module's
forward pass reproduces the model's own embeddings.

The query model is a cache, like the HNSW file: deleting it costs one slow query. Like every derived
file it is trusted only whole: its manifest records a hash of every file beside it and of its own
settings, and a copy that fails any check (or fails to load) is not used, but written again by the
next process that loads the model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from clipsearch.filesystem import DIGEST_KIND, fingerprint
from clipsearch.models.identity import ModelIdentity
from clipsearch.models.preprocessing import Preprocessing
from clipsearch.models.query_bert import TOKENIZER_FILE, HubTokenizer, bert_text
from clipsearch.models.tokenizer import ClipTokenizer

FORMAT_VERSION = 4  # 4: the manifest checks every file and its own settings (3: the weights file only)
MANIFEST = "manifest.json"
WEIGHTS = "weights.bin"
VOCABULARY = "bpe_merges.txt"  # open_clip's vocabulary file, decompressed: faster for a fresh query to read



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
        for offset, shape, dtype in table.values():  # every array inside the file: a bad table fails here, not later
            if not 0 <= offset <= offset + math.prod(shape) * np.dtype(dtype).itemsize <= len(self._file):
                raise ValueError(f"{path.name} is shorter than its table says")
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


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x @ weight.T (+ bias) over the last axis. Leading axes are flattened first: numpy multiplies a stacked
    (batch, tokens, width) array by a transposed matrix without BLAS, many times slower (bench/results)."""
    flat = x.reshape(-1, x.shape[-1]) @ weight.T
    if bias is not None:
        flat += bias
    return flat.reshape(*x.shape[:-1], weight.shape[0])


def _transformer(x: np.ndarray, w: _Weights, prefix: str, spec: dict, mask: np.ndarray | None) -> np.ndarray:
    """open_clip's pre-norm residual attention blocks, for x of shape (batch, tokens, width)."""
    heads, eps, activation = spec["heads"], spec["eps"], _ACTIVATIONS[spec["activation"]]
    batch, tokens, width = x.shape
    head_width = width // heads
    for layer in range(spec["layers"]):
        p = f"{prefix}.{layer}"
        h = _layer_norm(x, w(f"{p}.ln_1.weight"), w(f"{p}.ln_1.bias"), eps)
        qkv = _linear(h, w(f"{p}.attn.in_proj_weight"), w(f"{p}.attn.in_proj_bias"))
        q, k, v = (part.reshape(batch, tokens, heads, head_width).transpose(0, 2, 1, 3)
                   for part in np.split(qkv, 3, axis=-1))
        scores = (q / math.sqrt(head_width)) @ k.transpose(0, 1, 3, 2)
        if mask is not None:
            scores = scores + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attended = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        attended = attended.transpose(0, 2, 1, 3).reshape(batch, tokens, width)
        h = _linear(attended, w(f"{p}.attn.out_proj.weight"), w(f"{p}.attn.out_proj.bias"))
        x = x + (h * w(f"{p}.ls_1") if w.has(f"{p}.ls_1") else h)
        h = _layer_norm(x, w(f"{p}.ln_2.weight"), w(f"{p}.ln_2.bias"), eps)
        h = activation(_linear(h, w(f"{p}.c_fc.weight"), w(f"{p}.c_fc.bias")))
        h = _linear(h, w(f"{p}.c_proj.weight"), w(f"{p}.c_proj.bias"))
        x = x + (h * w(f"{p}.ls_2") if w.has(f"{p}.ls_2") else h)
    return x


def _pool_position(tokens: np.ndarray, spec: dict) -> int:
    """Where a text tower reads its text's vector: the end-of-text token (the highest id, or a given one), or the
    first or last position."""
    pool = spec["pool"]
    if pool == "eos":
        ends = np.flatnonzero(tokens == spec["eos_id"])
        return int(ends[0]) if len(ends) else len(tokens) - 1
    return {"argmax": int(tokens.argmax()), "first": 0, "last": len(tokens) - 1}[pool]


def _normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class QueryModel:
    """Embeds query texts (and images, for ViT models) in numpy, from an exported copy of the model."""

    def __init__(self, folder: Path, manifest: dict) -> None:
        self._weights = _Weights(folder / WEIGHTS, manifest["tensors"])
        self._text = manifest["text"]
        self._image = manifest.get("image")
        for spec in (self._text, self._image or {}):  # settings this runner does not know fail here, not in a query
            if "activation" in spec and spec["activation"] not in _ACTIVATIONS:
                raise ValueError(f"unknown activation {spec['activation']!r}")
        tokenizer = manifest.get("tokenizer") or {"kind": "clip"}
        self._tokenizer = (HubTokenizer(folder, tokenizer) if tokenizer["kind"] == "tokenizers"
                           else ClipTokenizer(folder / VOCABULARY, self._text["context_length"]))
        self.preprocessing = Preprocessing(**manifest["preprocessing"]) if self._image else None
        self.logit_scale = float(manifest.get("logit_scale", 100.0))

    @classmethod
    def open(cls, folder: Path, identity: ModelIdentity) -> QueryModel | None:
        """The exported copy of this model, or None if there is none (or it is for another model, or damaged)."""
        manifest = read_manifest(folder, identity)
        if manifest is None:
            return None
        try:
            return cls(folder, manifest)
        except Exception:  # a cache: whatever fails to load (tokenizers raises plain Exception) means the model
            return None

    @property
    def embeds_images(self) -> bool:
        return self._image is not None

    def embed_texts(self, texts: list[str], batch: int = 32) -> np.ndarray:
        """Texts -> L2-normalised float32 N x dim. Texts of similar length run together: a causal text tower's
        pooled token sees nothing after itself, so padding a shorter text to its batch's length changes nothing."""
        spec = self._text
        tokenized = [np.array(self._tokenizer(text)) for text in texts]
        pools = [_pool_position(t, spec) for t in tokenized]
        order = sorted(range(len(texts)), key=lambda i: pools[i]) if spec["causal"] else list(range(len(texts)))
        features = np.empty((len(texts), 0), np.float32)
        for start in range(0, len(order), batch if spec["causal"] else 1):
            chosen = order[start:start + (batch if spec["causal"] else 1)]
            embedded = self._embed_token_batch([tokenized[i] for i in chosen], [pools[i] for i in chosen])
            if features.shape[1] == 0:
                features = np.empty((len(texts), embedded.shape[1]), np.float32)
            features[chosen] = embedded
        return _normalised(features)

    def _embed_token_batch(self, tokens: list[np.ndarray], pools: list[int]) -> np.ndarray:
        spec, w = self._text, self._weights
        # Causal: nothing after the pooled token can reach it, so the batch stops at its longest pooled position.
        length = max(pools) + 1 if spec["causal"] else len(tokens[0])
        # Texts end at their own length (the model's tokenizer pads nothing): positions past a causal text's pooled
        # token cannot reach it, so any id fills them.
        ids = np.stack([np.pad(t[:length], (0, length - len(t[:length]))) for t in tokens])
        if spec.get("kind") == "bert":
            x = bert_text(ids, w, spec, _ACTIVATIONS[spec["activation"]], _layer_norm, _linear)
            return self._project(x[np.arange(len(tokens)), pools], "text")
        x = w.raw("text.token_embedding")[ids].astype(np.float32) + w("text.positional_embedding")[:length]
        mask = np.triu(np.full((length, length), -np.inf, np.float32), 1) if spec["causal"] else None
        x = _transformer(x, w, "text.blocks", spec, mask)
        pooled = x[np.arange(len(tokens)), pools]
        pooled = _layer_norm(pooled, w("text.ln_final.weight"), w("text.ln_final.bias"), spec["eps"])
        return self._project(pooled, "text")

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
        x = _linear(patches, w("image.patch_weight").reshape(spec["width"], -1))
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


def settings_digest(manifest: dict) -> str:
    """A hash of everything the manifest says but this hash itself: the settings, the tensor table, the files'."""
    import xxhash

    body = json.dumps({k: v for k, v in manifest.items() if k != "digest"}, sort_keys=True, separators=(",", ":"))
    return f"{DIGEST_KIND}:{xxhash.xxh3_128_hexdigest(body.encode())}"


def seal(folder: Path) -> None:
    """Record in `folder`'s manifest the size and hash of every other file in it, and a hash of the whole manifest."""
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"] = {path.name: list(fingerprint(path)) for path in sorted(folder.iterdir())
                         if path.name != MANIFEST}
    manifest["digest"] = settings_digest(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def manifest_state(folder: Path, identity: ModelIdentity) -> tuple[str, dict | None]:
    """("ready", manifest) for a sound export of this model in `folder`; ("missing", None) when there is none, or
    a sound one of another model (replaced by the next export); ("damaged", None) for anything else: a manifest
    that does not parse, is of another format (older ones checked less), or whose settings or any of whose files
    are not the ones it was sealed with."""
    try:
        text = (folder / MANIFEST).read_text()
    except FileNotFoundError:
        return ("damaged" if folder.is_dir() else "missing"), None
    except (OSError, ValueError):
        return "damaged", None
    try:
        manifest = json.loads(text)
        if manifest.get("version") != FORMAT_VERSION or manifest.get("digest") != settings_digest(manifest):
            return "damaged", None
        if not ModelIdentity.from_dict(manifest["identity"]).same_model(identity):
            return "missing", None
        files = manifest["files"]
        tokenizer = (manifest.get("tokenizer") or {"kind": "clip"})["kind"]
        needed = {WEIGHTS, TOKENIZER_FILE if tokenizer == "tokenizers" else VOCABULARY}
        if not needed <= files.keys() or any("/" in name or name.startswith(".") for name in files):
            return "damaged", None
        # Size and a hash of each whole file, as for the HNSW file: damage anywhere would give wrong vectors.
        if any(list(fingerprint(folder / name)) != recorded for name, recorded in files.items()):
            return "damaged", None
        return "ready", manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "damaged", None


def read_manifest(folder: Path, identity: ModelIdentity) -> dict | None:
    """The manifest of a sound export of this model in `folder`, or None."""
    return manifest_state(folder, identity)[1]
