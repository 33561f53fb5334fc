"""What `clipsearch status` reports: the database, its model, what it holds, and the state of its caches.

It loads no model and no index: every cache's state is judged from its files and records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from clipsearch.config import DataDir
from clipsearch.imaging.thumbnails import ThumbnailCache
from clipsearch.models.identity import ModelIdentity, recorded_model
from clipsearch.models.openvino import recorded_engine
from clipsearch.models.query_model import manifest_state
from clipsearch.models.query_model_export import read_outcome
from clipsearch.store.catalog import Catalog
from clipsearch.store.crawl_memory import Failure
from clipsearch.store.folder import readable_by_others
from clipsearch.store.hnsw import trusted_state
from clipsearch.store.lock import current_writer


@dataclass(frozen=True)
class IndexCacheState:
    """What status reports of the HNSW index file, a cache of the catalogue's vectors."""

    state: str  # "current", "behind" (caught up on the next query), "missing" or "damaged" (rebuilt), "none"
    size_bytes: int | None = None


@dataclass(frozen=True)
class QueryModelState:
    # "ready" (queries skip torch), "missing" or "damaged" (not used; written by the next query that loads torch),
    # "unavailable" (this model cannot have one)
    state: str
    towers: tuple[str, ...] = ()
    size_bytes: int | None = None
    reason: str | None = None  # why it is unavailable
    software: str | None = None  # the model library it was tried with


@dataclass(frozen=True)
class ThumbnailState:
    entries: int
    size_bytes: int
    cap_bytes: int  # the total cap (CLIPSEARCH_THUMBNAIL_CACHE_MB): the oldest entries go past it


@dataclass(frozen=True)
class SwitchState:
    to: str
    embedded: int  # files embedded with the new model so far
    files: int  # files in the database


@dataclass(frozen=True)
class Status:
    database: str
    model: str | None
    model_identity: dict | None
    images: int
    roots: list[str]
    size_bytes: int
    last_indexed: str | None
    index: IndexCacheState
    known_bad_files: int
    query_model: QueryModelState
    server: dict | None = None  # a running server (version, pid, uptime_s, answered): filled in by Library.status
    writer: str | None = None  # the `index` or `forget` writing now
    switch: SwitchState | None = None
    private: bool = True  # False when other users can read the folder
    root_options: dict[str, dict] = field(default_factory=dict)
    skipped: list[Failure] | None = None  # with --skipped: every remembered failure
    thumbnails: ThumbnailState | None = None
    regions: int = 0  # region vectors of `index --regions`
    engine: dict | None = None  # what `index` embeds with on OpenVINO: precision, its check and why

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.skipped is None:
            del data["skipped"]
        return data


def database_status(data_dir: DataDir, list_skipped: bool = False) -> Status:
    size = sum(p.stat().st_size for p in data_dir.root.rglob("*") if p.is_file()) if data_dir.root.is_dir() else 0
    writer, private = current_writer(data_dir), not readable_by_others(data_dir.root)
    if not data_dir.catalog.exists():
        return Status(str(data_dir.root), None, None, 0, [], size, None, IndexCacheState("none"), 0,
                      QueryModelState("missing"), writer=writer, private=private,
                      skipped=[] if list_skipped else None)
    catalog = Catalog(data_dir.catalog)
    try:
        stats = catalog.stats()
        identity = recorded_model(catalog)
        roots = catalog.roots.all()
        return Status(
            database=str(data_dir.root), model=identity.describe() if identity else None,
            model_identity=identity.to_dict() if identity else None, images=stats.files,
            roots=[root.path for root in roots], size_bytes=size, last_indexed=stats.last_indexed,
            index=_index_state(data_dir, catalog, identity), known_bad_files=stats.failures,
            query_model=_query_model_state(data_dir, identity), writer=writer,
            switch=_switch_state(catalog), private=private,
            root_options={root.path: root.options for root in roots},
            skipped=catalog.failures.all() if list_skipped else None, thumbnails=_thumbnail_state(data_dir),
            regions=catalog.regions.count(), engine=_engine_state(data_dir, identity),
        )
    finally:
        catalog.close()


def _engine_state(data_dir: DataDir, identity: ModelIdentity | None) -> dict | None:
    converted = recorded_engine(data_dir.openvino, identity) if identity else None
    if converted is None or not converted.precision:
        return None
    return {"name": "openvino", "version": converted.openvino, "precision": converted.precision,
            "min_cosine": converted.min_cosine, "reason": converted.reason}


def _thumbnail_state(data_dir: DataDir) -> ThumbnailState:
    stats = ThumbnailCache(data_dir.thumbnails).stats()
    return ThumbnailState(stats.entries, stats.size_bytes, stats.cap_bytes)


def _switch_state(catalog: Catalog) -> SwitchState | None:
    stored = catalog.staging.switch_target()
    if not stored:
        return None
    return SwitchState(ModelIdentity.from_dict(stored).describe(), catalog.staging.count(), catalog.files.count())


def _query_model_state(data_dir: DataDir, identity: ModelIdentity | None) -> QueryModelState:
    state, manifest = manifest_state(data_dir.query_model, identity) if identity else ("missing", None)
    if manifest is not None:
        towers = ("text", "image") if manifest.get("image") else ("text",)
        size = sum(p.stat().st_size for p in data_dir.query_model.iterdir())
        return QueryModelState("ready", towers, size)
    outcome = read_outcome(data_dir.query_model_outcome)
    if (identity is not None and outcome is not None and not outcome.text
            and ModelIdentity.from_dict(outcome.identity).same_model(identity)):
        return QueryModelState("unavailable", reason=outcome.reason, software=outcome.software)
    return QueryModelState(state)


def _index_state(data_dir: DataDir, catalog: Catalog, identity: ModelIdentity | None) -> IndexCacheState:
    """What `VectorIndex.open` will make of the HNSW file, judged from its whole contents: status loads no index."""
    if not catalog.files.count() or identity is None:
        return IndexCacheState("none")
    if not data_dir.hnsw.exists() or not data_dir.hnsw_state.exists():
        return IndexCacheState("missing")
    state = trusted_state(data_dir, catalog, identity.dim)
    if state is None:
        return IndexCacheState("damaged")
    return IndexCacheState("behind" if state.seq < catalog.current_seq() else "current", state.size)
