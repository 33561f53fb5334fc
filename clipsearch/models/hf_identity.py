"""Models from Hugging Face `transformers`, named `hf:REPO` or `hf:DIRECTORY`: their files and their identity.

A repository is pinned to the commit its files came from (the `pretrained` field of its identity), so a
database keeps using exactly those weights however the repository moves on; a directory is recognised by
the SHA-256 of its weight files, like a local open_clip checkpoint, so it may be moved. Nothing here imports
torch or transformers: configs are JSON, and huggingface_hub is imported only to fetch a repository.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from clipsearch.errors import ModelError, UsageError

PREFIX = "hf:"
# What a CLIP-family model needs to load offline: config, weights, tokenizer and image processor files.
SNAPSHOT_FILES = ["config.json", "preprocessor_config.json", "processor_config.json", "tokenizer.json",
                  "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
                  "spiece.model", "sentencepiece.bpe.model", "*.safetensors", "*.safetensors.index.json"]
LEGACY_WEIGHTS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def is_hf(model: str | None) -> bool:
    return bool(model) and model.startswith(PREFIX)


def local_directory(model: str) -> Path | None:
    """The directory an `hf:` name points to, when it names one (a path, not a repository id)."""
    name = model[len(PREFIX):]
    path = Path(name).expanduser()
    if path.is_dir() or name.startswith(("/", ".", "~")) or name.count("/") > 1:
        return path.resolve()
    return None


def read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"{folder}: not a Hugging Face model directory (config.json: {error})") from error
    if not isinstance(config, dict):
        raise UsageError(f"{folder}: config.json is not a model config")
    return config


def embedding_dim(config: dict) -> int:
    """The size of the vectors get_image_features/get_text_features give: CLIP's projection, SigLIP's width."""
    if config.get("projection_dim"):
        return int(config["projection_dim"])
    text = config.get("text_config") or {}
    if text.get("projection_size"):
        return int(text["projection_size"])
    if text.get("hidden_size"):
        return int(text["hidden_size"])
    raise UsageError(f"a {config.get('model_type', 'model')} config without projection_dim: not a CLIP-family "
                     "model clipsearch can use")


def weight_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    return safetensors or files  # transformers loads safetensors when there are any


def weights_sha256(folder: Path, hash_cache: dict[str, list] | None = None) -> str:
    """One SHA-256 over the directory's weight files, each hashed once per size and modification time."""
    files = weight_files(folder)
    if not files:
        raise UsageError(f"{folder}: no weights (*.safetensors or pytorch_model*.bin) in this model directory")
    combined = hashlib.sha256()
    for path in files:
        combined.update(f"{path.name}\0{file_sha256(path, hash_cache)}\n".encode())
    return combined.hexdigest()


def file_sha256(path: Path, hash_cache: dict[str, list] | None = None) -> str:
    """A file's SHA-256, taken from `hash_cache` while its size and modification time are those it was hashed at
    (a checkpoint of hundreds of MB is hashed once, not on every command)."""
    stat = path.stat()
    cached = (hash_cache or {}).get(str(path))
    if cached and cached[:2] == [stat.st_size, stat.st_mtime_ns]:
        return cached[2]
    digest = _file_sha256(path)
    if hash_cache is not None:
        hash_cache[str(path)] = [stat.st_size, stat.st_mtime_ns, digest]
    return digest


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def repository_snapshot(repo: str, revision: str | None = None) -> Path:
    """A repository's files in the Hugging Face cache: taken from the cache when there, else downloaded (with
    huggingface_hub's progress bars), or a ModelError that says how to work offline."""
    from clipsearch.models.hub import hub_offline, hub_unreachable

    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        raise ModelError("hf: models need the transformers package: pip install transformers") from error
    try:
        with hub_offline():
            folder = Path(snapshot_download(repo, revision=revision, allow_patterns=SNAPSHOT_FILES + LEGACY_WEIGHTS))
        if (folder / "config.json").is_file() and weight_files(folder):
            return folder
    except Exception:  # not in the cache (huggingface_hub raises several kinds): fetch it
        pass
    problem = hub_unreachable()
    if problem:
        raise ModelError(f"could not download hf:{repo} ({problem}). Offline? On a connected machine run "
                         f"`huggingface-cli download {repo}` (or `git clone https://huggingface.co/{repo}`) and "
                         f"pass the folder: --model hf:/path/to/folder")
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=_patterns_for(repo, revision)))
    except Exception as error:
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ModelError(f"could not download hf:{repo}: {reason}") from error


def _patterns_for(repo: str, revision: str | None) -> list[str]:
    """safetensors when the repository has them, else its PyTorch weights: never both."""
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(repo, revision=revision)
    has_safetensors = any(name.endswith(".safetensors") for name in files)
    return SNAPSHOT_FILES if has_safetensors else SNAPSHOT_FILES + LEGACY_WEIGHTS


def snapshot_revision(folder: Path) -> str:
    """The commit a cached snapshot holds: its folder is named by it (…/snapshots/COMMIT)."""
    return folder.name
