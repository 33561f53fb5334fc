"""What `clipsearch status` reports: the database, its model, what it holds, and the state of its caches.

It loads no model and no index: every cache's state is judged from its files and records.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.filesize import decimal as human_size

from clipsearch.config import DataDir
from clipsearch.models.identity import MODEL_SETTING, ModelIdentity
from clipsearch.models.query_model import read_manifest
from clipsearch.models.query_model_export import QueryModelOutcome, read_outcome
from clipsearch.search.client import server_info
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import trusted_state


@dataclass(frozen=True)
class DatabaseStatus:
    database: str
    model: str | None
    model_identity: dict | None
    images: int
    roots: list[str]
    size_bytes: int
    last_indexed: str | None
    index: str
    known_bad_files: int
    query_model: str = "none"
    server: dict | None = None  # pid, uptime_s and answered of a running `clipsearch serve`

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def lines(self) -> list[tuple[str, str]]:
        roots = self.roots or ["(none)"]
        lines = [("database", self.database), ("model", self.model or "(none yet)"), ("images", str(self.images)),
                 ("roots", roots[0])]
        lines += [("", root) for root in roots[1:]]
        lines += [("size on disk", human_size(self.size_bytes)), ("last indexed", self.last_indexed or "never"),
                  ("vector index", self.index), ("query model", self.query_model)]
        if self.server:
            lines.append(("server", f"running (pid {self.server['pid']}, {self.server['answered']} requests answered)"))
        if self.known_bad_files:
            plural = "s" if self.known_bad_files != 1 else ""
            lines.append(("unreadable", f"{self.known_bad_files} file{plural} (retried when they change)"))
        return lines


def database_status(data_dir: DataDir) -> DatabaseStatus:
    size = sum(p.stat().st_size for p in data_dir.root.rglob("*") if p.is_file()) if data_dir.root.is_dir() else 0
    if not data_dir.catalog.exists():
        return DatabaseStatus(str(data_dir.root), None, None, 0, [], size, None, "none", 0)
    catalog = Catalog(data_dir.catalog)
    try:
        stats = catalog.stats()
        stored = catalog.get_json(MODEL_SETTING)
        identity = ModelIdentity.from_dict(stored) if stored else None
        index = _index_state(data_dir, catalog, identity.dim if identity else None)
        return DatabaseStatus(
            database=str(data_dir.root), model=identity.describe() if identity else None, model_identity=stored,
            images=stats.files, roots=stats.roots, size_bytes=size, last_indexed=stats.last_indexed, index=index,
            known_bad_files=stats.failures,
            query_model=_query_model_state(data_dir, identity), server=server_info(data_dir),
        )
    finally:
        catalog.close()


def _query_model_state(data_dir: DataDir, identity: ModelIdentity | None) -> str:
    manifest = read_manifest(data_dir.query_model, identity) if identity else None
    if manifest is not None:
        towers = "text and image towers" if manifest.get("image") else "text tower"
        size = sum(p.stat().st_size for p in data_dir.query_model.iterdir())
        return f"numpy copy of the {towers}: queries skip torch ({human_size(size)})"
    outcome = read_outcome(data_dir.query_model_outcome)
    if identity is not None and outcome is not None and not outcome.text and _same_model(outcome, identity):
        return (f"none: it cannot be made for this model with {outcome.software} ({outcome.reason}); queries load "
                "torch")
    return "none (the next query loads torch, then writes it)"


def _same_model(outcome: QueryModelOutcome, identity: ModelIdentity) -> bool:
    return ModelIdentity.from_dict(outcome.identity).same_model(identity)


def _index_state(data_dir: DataDir, catalog: Catalog, dim: int | None) -> str:
    """What `VectorIndex.open` will make of the HNSW file, judged cheaply: status loads no index."""
    if not data_dir.hnsw.exists() or not data_dir.hnsw_state.exists():
        return "missing (rebuilt from the catalogue on the next query)"
    state = trusted_state(data_dir, catalog, dim) if dim else None
    if state is None:
        return "damaged or out of date (rebuilt from the catalogue on the next query)"
    if state.seq < catalog.current_seq():
        return "behind the catalogue (caught up on the next query)"
    return f"current ({human_size(state.size)})"
