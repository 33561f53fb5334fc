"""Which model a database uses: what the user asked for, its identity, and whether the two agree.

Everything here works without torch or open_clip: a model's vector size is read from its
config JSON, so `status`, queries answered by the query model and the server's client never
pay for importing them.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from clipsearch.config import DEFAULT_MODEL, DEFAULT_PRETRAINED
from clipsearch.errors import ModelMismatchError, UsageError
from clipsearch.models.device import Device, Precision
from clipsearch.models.hf_identity import PREFIX as HF_PREFIX
from clipsearch.models.hf_identity import (
    embedding_dim,
    file_sha256,
    is_hf,
    local_directory,
    read_config,
    repository_snapshot,
    snapshot_revision,
    weights_sha256,
)

MODEL_SETTING = "model"
CHECKPOINT_HASHES_SETTING = "checkpoint_hashes"


class ModelRecord(Protocol):
    """Where a database keeps its model's identity: the catalogue's settings."""

    def get_json(self, key: str) -> dict | None: ...

    def set_json(self, key: str, value: dict) -> None: ...

    def count(self) -> int: ...


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for: an open_clip architecture (or config JSON) and weights (tag or file)."""

    model: str
    pretrained: str | None

    @property
    def is_hf(self) -> bool:
        return is_hf(self.model)

    @property
    def config_path(self) -> Path | None:
        if self.is_hf:
            return None
        path = Path(self.model).expanduser()
        return path.resolve() if self.model.endswith(".json") or path.is_file() else None

    @property
    def architecture(self) -> str:
        if self.is_hf:
            folder = local_directory(self.model)
            if folder is not None and folder.is_dir():
                return f"{HF_PREFIX}{read_config(folder).get('model_type', 'model')}"
            return self.model
        config = self.config_path
        return config.stem if config else self.model

    @property
    def checkpoint_path(self) -> Path | None:
        if self.is_hf:
            return local_directory(self.model)  # a repository's `pretrained` is its revision, never a path
        if self.pretrained is None:
            return None
        path = Path(self.pretrained).expanduser()
        looks_like_path = path.exists() or "/" in self.pretrained or path.suffix in {".pt", ".bin", ".pth",
                                                                                       ".safetensors"}
        return path.resolve() if looks_like_path else None


@dataclass(frozen=True)
class ModelIdentity:
    """What a database records about its model, so every later command uses the same one."""

    architecture: str
    pretrained: str | None  # a tag from open_clip's registry
    checkpoint_sha256: str | None  # a local checkpoint file's content
    checkpoint_path: str | None
    config_path: str | None
    dim: int

    def describe(self) -> str:
        if is_hf(self.architecture):
            if self.checkpoint_path:
                return f"{self.architecture} (folder {self.checkpoint_path}, sha256 {self.checkpoint_sha256[:12]})"
            return f"{self.architecture} (revision {(self.pretrained or 'unknown')[:12]})"
        if self.pretrained:
            return f"{self.architecture} ({self.pretrained})"
        if self.checkpoint_path:
            return f"{self.architecture} (checkpoint {self.checkpoint_path}, sha256 {self.checkpoint_sha256[:12]})"
        return f"{self.architecture} (random weights)"

    def same_model(self, other: ModelIdentity) -> bool:
        return (self.architecture, self.pretrained, self.checkpoint_sha256, self.dim) == (
            other.architecture, other.pretrained, other.checkpoint_sha256, other.dim)

    @property
    def backend(self) -> str:
        return "transformers" if is_hf(self.architecture) else "open_clip"

    def spec(self) -> ModelSpec:
        if is_hf(self.architecture):
            return ModelSpec(HF_PREFIX + self.checkpoint_path if self.checkpoint_path else self.architecture,
                             None if self.checkpoint_path else self.pretrained)
        return ModelSpec(self.config_path or self.architecture, self.checkpoint_path or self.pretrained)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})


def builtin_configs() -> Path | None:
    """open_clip's folder of model configs, found without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model_configs"


def known_architecture(architecture: str) -> dict:
    """open_clip's config of a named architecture, or a UsageError that suggests the closest names."""
    folder = builtin_configs()
    path = folder / f"{architecture}.json" if folder else None
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    import difflib

    names = sorted(p.stem for p in folder.glob("*.json")) if folder else []
    close = difflib.get_close_matches(architecture, names, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise UsageError(f"--model {architecture}: no such open_clip model; {hint}(`python -c \"import open_clip; "
                     "print(open_clip.list_models())\"` lists them; a path to a model config JSON works too)")


def identify(spec: ModelSpec, hash_cache: dict[str, list] | None = None) -> ModelIdentity:
    """The identity of a spec, without loading the model (a Hugging Face repository is fetched, though)."""
    if spec.is_hf:
        return _identify_hf(spec, hash_cache)
    config_path = spec.config_path
    if config_path is not None:
        if not config_path.is_file():
            raise UsageError(f"--model {spec.model}: no such model config file")
        try:
            config = json.loads(config_path.read_text())
            dim = int(config["embed_dim"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UsageError(f"--model {config_path}: not an open_clip model config ({error})") from error
    else:
        config = known_architecture(spec.model)
        dim = int(config["embed_dim"])
    checkpoint = spec.checkpoint_path
    sha = None
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise UsageError(f"--pretrained {spec.pretrained}: no such checkpoint file")
        sha = file_sha256(checkpoint, hash_cache)
    return ModelIdentity(
        architecture=spec.architecture,
        pretrained=None if checkpoint else spec.pretrained,
        checkpoint_sha256=sha,
        checkpoint_path=str(checkpoint) if checkpoint else None,
        config_path=str(config_path) if config_path else None,
        dim=dim,
    )


def _identify_hf(spec: ModelSpec, hash_cache: dict[str, list] | None) -> ModelIdentity:
    folder = local_directory(spec.model)
    if folder is not None:
        if not folder.is_dir():
            raise UsageError(f"--model {spec.model}: no such model directory")
        config = read_config(folder)
        return ModelIdentity(f"{HF_PREFIX}{config.get('model_type', 'model')}", None,
                             weights_sha256(folder, hash_cache), str(folder), None, embedding_dim(config))
    repo = spec.model[len(HF_PREFIX):]
    snapshot = repository_snapshot(repo, spec.pretrained)
    return ModelIdentity(spec.model, snapshot_revision(snapshot), None, None, None,
                         embedding_dim(read_config(snapshot)))


# Where open_clip lists weaker weights first: ViT-B-32's first tag is "openai", weaker on ImageNet than
# laion2b_s34b_b79k, clipsearch's default before ViT-B-32-256, so `--model ViT-B-32` keeps meaning it.
PREFERRED_PRETRAINED = {DEFAULT_MODEL: DEFAULT_PRETRAINED, "ViT-B-32": "laion2b_s34b_b79k"}


def default_pretrained(architecture: str) -> str:
    """What `--model NAME` alone means: our preferred weights, else open_clip's first pretrained tag."""
    if architecture in PREFERRED_PRETRAINED:
        return PREFERRED_PRETRAINED[architecture]
    from clipsearch.models.hub import quiet_root_logger

    with quiet_root_logger():
        import open_clip

        tags = open_clip.list_pretrained_tags_by_model(architecture)
    if not tags:
        raise UsageError(f"--model {architecture} has no pretrained weights in open_clip: pass --pretrained "
                         "with a checkpoint file")
    return tags[0]


@dataclass(frozen=True)
class ModelChoice:
    """What a user asks for: --model, --pretrained, --device and --precision (None and auto: the database's own).

    A search with the defaults may be answered by a running server, which holds the database's own model."""

    model: str | None = None
    pretrained: str | None = None
    device: Device = Device.auto
    precision: Precision = Precision.auto

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", Device(self.device))
        object.__setattr__(self, "precision", Precision(self.precision))

    @property
    def is_default(self) -> bool:
        return self == ModelChoice()


@dataclass(frozen=True)
class ResolvedModel:
    """The model a command uses on a database, and whether that replaces the one it records."""

    identity: ModelIdentity
    changed: bool  # True for a new database, an empty one told another model, or a switch (--reindex)
    recorded: ModelIdentity | None  # what the database recorded before, if anything


def recorded_model(catalog: ModelRecord) -> ModelIdentity | None:
    stored = catalog.settings.get_json(MODEL_SETTING)
    return ModelIdentity.from_dict(stored) if stored else None


def resolve_model(catalog: ModelRecord, model: str | None, pretrained: str | None, *,
                  reindex: bool = False, record: bool = False) -> ResolvedModel:
    """The model a command must use on this catalogue.

    Nothing asked for: the recorded model (or the default for a new database); its files are not needed
    until the model is loaded. Something asked for that differs from the record: refused, unless the
    database holds no vectors yet or `reindex` asks for a switch.

    Only a writer (`record`, with the writer lock held) records what it learnt: where moved model files are now,
    and the checkpoint hashes it computed. A reading command works it out again and writes nothing.
    """
    recorded = recorded_model(catalog)
    if model is None and pretrained is None:
        if recorded is None:
            return ResolvedModel(identify(ModelSpec(DEFAULT_MODEL, DEFAULT_PRETRAINED)), True, None)
        return ResolvedModel(recorded, False, recorded)
    identity = _identify_request(catalog, recorded, model, pretrained, record)
    if recorded is None:
        return ResolvedModel(identity, True, None)
    if not recorded.same_model(identity):
        if reindex or catalog.files.count() == 0:
            return ResolvedModel(identity, True, recorded)
        raise ModelMismatchError(
            f"this database was indexed with {recorded.describe()}, not {identity.describe()}: leave out "
            "--model/--pretrained to use its model, pick another --db, or re-embed everything with "
            "`clipsearch index --reindex`"
        )
    moved = (identity.checkpoint_path, identity.config_path) != (recorded.checkpoint_path, recorded.config_path)
    if moved and record:
        catalog.settings.set_json(MODEL_SETTING, identity.to_dict())  # the same files, moved: where they are now
    return ResolvedModel(identity, False, recorded)


def _identify_request(catalog: ModelRecord, recorded: ModelIdentity | None, model: str | None,
                      pretrained: str | None, record: bool) -> ModelIdentity:
    """The identity of what --model and --pretrained ask for, the one left out taken from the record."""
    base = recorded.spec() if recorded else ModelSpec(DEFAULT_MODEL, DEFAULT_PRETRAINED)
    asked_model = model or base.model
    asked_pretrained = pretrained
    if is_hf(asked_model):
        # The recorded revision of the same repository, so the database keeps its exact weights; a folder has none.
        same_repository = recorded is not None and recorded.architecture == asked_model
        if asked_pretrained is None and same_repository:
            asked_pretrained = recorded.pretrained
    elif asked_pretrained is None:
        if model is None or ModelSpec(model, None).architecture == ModelSpec(base.model, None).architecture:
            asked_pretrained = base.pretrained
            if recorded and recorded.checkpoint_path and not Path(recorded.checkpoint_path).is_file():
                raise UsageError(f"the checkpoint this database was indexed with, {recorded.checkpoint_path}, is "
                                 "missing: pass --pretrained with where it is now, along with --model")
        elif ModelSpec(model, None).config_path is not None:
            raise UsageError(f"--model {model}: a local model config needs its weights: add --pretrained CHECKPOINT")
        else:
            known_architecture(model)
            asked_pretrained = default_pretrained(model)
    hash_cache = catalog.settings.get_json(CHECKPOINT_HASHES_SETTING) or {}
    cache_before = json.dumps(hash_cache, sort_keys=True)
    identity = identify(ModelSpec(asked_model, asked_pretrained), hash_cache)
    if record and json.dumps(hash_cache, sort_keys=True) != cache_before:
        catalog.settings.set_json(CHECKPOINT_HASHES_SETTING, hash_cache)
    return identity


def missing_files(identity: ModelIdentity) -> str | None:
    """Why the model cannot be loaded from the files its identity names, or None: one message naming both flags."""
    if is_hf(identity.architecture):
        if identity.checkpoint_path and not Path(identity.checkpoint_path).is_dir():
            return (f"this database's model folder {identity.checkpoint_path} is missing: pass --model "
                    "hf:/where/it/is/now (it is recognised by its weights); `web` and `serve` take no --model: "
                    "run `clipsearch index --model hf:/where/it/is/now` once to record the new place")
        return None
    missing = [(what, path, flag) for what, path, flag in (("model config", identity.config_path, "--model"),
                                                           ("checkpoint", identity.checkpoint_path, "--pretrained"))
               if path and not Path(path).is_file()]
    if not missing:
        return None
    named = " and ".join(f"the {what} {path}" for what, path, _ in missing)
    flags = " ".join(f"{flag} {'CONFIG.json' if flag == '--model' else 'CHECKPOINT'}" for flag in
                     (["--model"] if identity.config_path else []) + (["--pretrained"] if identity.checkpoint_path
                                                                       else []))
    return (f"this database's model files have moved: {named} {'is' if len(missing) == 1 else 'are'} missing. "
            f"Pass {flags} with where they are now (they are recognised by their content); `web` and `serve` "
            f"take no such options: run `clipsearch index {flags}` once, which records the new place for every "
            "command")
