"""The HNSW vector index derived from the catalogue: build, catch up, search, save.

The file beside the catalogue is a cache. A small JSON state records which catalogue it
belongs to, up to which change sequence it is current, and a fingerprint of the file,
so a missing, foreign, truncated or corrupt index is rebuilt and a stale one is caught up,
without anyone having to ask.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

import hnswlib
import numpy as np

from clipsearch.config import DataDir
from clipsearch.errors import CatalogError
from clipsearch.filesystem import (
    content_hash,
    create_private,
    fingerprint,
    remove_leftovers,
    temporary_name,
    write_json_atomically,
)
from clipsearch.store.catalog import Catalog
from clipsearch.store.vectors import VectorTable

# Chosen with bench/vector_search.py over 1M synthetic CLIP-like vectors (docs/speed.md, "Vector search"): low-contrast,
# text-like queries need ef=256 for recall@10 near 0.98, and M=16 would need ef=512 for them.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 256


FILES, REGIONS = "files", "regions"  # the two kinds of vectors a database may hold, each with an index of its own


def _rows(catalog: Catalog, kind: str) -> VectorTable:
    return catalog.files if kind == FILES else catalog.regions


def index_paths(data_dir: DataDir, kind: str = FILES) -> tuple[Path, Path]:
    """The index file and its state file."""
    return (data_dir.hnsw, data_dir.hnsw_state) if kind == FILES else (data_dir.regions_hnsw,
                                                                       data_dir.regions_hnsw_state)


@dataclass(frozen=True)
class Hit:
    id: int
    score: float


@dataclass(frozen=True)
class SavedIndexState:
    """The state file beside a saved index: the catalogue and change it is current to, and the file's fingerprint."""

    catalog_id: str
    seq: int
    dim: int
    size: int
    fingerprint: str
    kind: str = ""  # FILES or REGIONS: the two files are alike, and one copied over the other must not pass
    model: str = ""  # _model_key of the catalogue's model when the index was saved

    @classmethod
    def read(cls, path: Path) -> SavedIndexState | None:
        """The state file's contents, or None if it is missing or not what we write (anyone can edit it)."""
        try:
            state = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        numbers = (state.seq, state.dim, state.size)
        if not (isinstance(state.catalog_id, str) and isinstance(state.fingerprint, str)
                and isinstance(state.kind, str) and isinstance(state.model, str)
                and all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)):
            return None
        return state


def trusted_state(data_dir: DataDir, catalog: Catalog, dim: int, kind: str = FILES) -> SavedIndexState | None:
    """The saved index's state, if the file on disk is the one it describes, for this catalogue and model."""
    index_file, state_file = index_paths(data_dir, kind)
    state = SavedIndexState.read(state_file)
    if (state is None or state.catalog_id != (catalog.settings.get("catalog_id") or "") or state.dim != dim
            or state.seq > catalog.current_seq() or state.kind != kind or state.model != _model_key(catalog)):
        return None
    try:
        on_disk = fingerprint(index_file)
    except OSError:
        return None
    return state if on_disk == (state.size, state.fingerprint) else None


def _model_key(catalog: Catalog) -> str:
    """A hash of the catalogue's model setting, less where its files are (moving them changes no vector)."""
    try:
        model = json.loads(catalog.settings.get("model") or "{}")
    except ValueError:
        model = None
    if isinstance(model, dict):
        model = {key: value for key, value in model.items() if not key.endswith("_path")}
    return content_hash(json.dumps(model, sort_keys=True).encode())


class VectorIndex:
    def __init__(self, dim: int, capacity: int = 1024, kind: str = FILES) -> None:
        self.dim = dim
        self.kind = kind
        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(max_elements=max(capacity, 16), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M)
        self._index.set_ef(HNSW_EF_SEARCH)
        self._live = 0
        self.seq = 0

    @classmethod
    def open(cls, data_dir: DataDir, catalog: Catalog, dim: int, kind: str = FILES) -> tuple[VectorIndex, str]:
        """The index for this catalogue, current to its latest change, and how it was obtained."""
        state = trusted_state(data_dir, catalog, dim, kind)
        index: VectorIndex | None = None
        how = "loaded"
        if state is not None:
            try:
                index = cls._load(index_paths(data_dir, kind)[0], dim, state.seq, catalog, kind)
            except (OSError, RuntimeError, ValueError, MemoryError):
                index = None
        if index is not None and index.catch_up(catalog):
            how = "caught up"
        # A file older than its state claims lacks rows that no catch-up will bring: it holds fewer than exist.
        if index is None or index._index.element_count < _rows(catalog, kind).count():
            index, how = cls.build(catalog, dim, kind), "rebuilt"
        return index, how

    @classmethod
    def _load(cls, path: Path, dim: int, seq: int, catalog: Catalog, kind: str = FILES) -> VectorIndex:
        index = cls.__new__(cls)
        index.dim = dim
        index.kind = kind
        index._index = hnswlib.Index(space="ip", dim=dim)
        index._index.load_index(str(path))
        index._index.set_ef(HNSW_EF_SEARCH)
        index._live = _rows(catalog, kind).count()
        index.seq = seq
        return index

    @classmethod
    def build(cls, catalog: Catalog, dim: int, kind: str = FILES) -> VectorIndex:
        seq = catalog.current_seq()
        rows = _rows(catalog, kind)
        index = cls(dim, capacity=rows.count() + 1024, kind=kind)
        for ids, vectors in rows.vectors():
            index.add(ids, vectors)
        index.seq = seq
        index._live = rows.count()
        return index

    def __len__(self) -> int:
        return self._live

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        needed = self._index.element_count + len(ids)
        if needed > self._index.get_max_elements():
            self._index.resize_index(max(needed, 2 * self._index.get_max_elements()))
        # An existing label is updated in place (and undeleted), so re-embedded files keep their label.
        self._index.add_items(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def remove(self, ids: list[int]) -> None:
        for label in ids:
            with contextlib.suppress(RuntimeError):  # never added, or already deleted
                self._index.mark_deleted(int(label))

    def catch_up(self, catalog: Catalog) -> bool:
        """Apply the catalogue's changes since this index's seq; True if there were any."""
        latest = catalog.current_seq()
        if latest == self.seq:
            return False
        rows = _rows(catalog, self.kind)
        changes = rows.changes_since(self.seq)
        removed = changes.removed
        if not changes.removals_complete:
            removed = sorted(set(self._index.get_ids_list()) - set(rows.ids().tolist()))
        # Removals first: a row that exists in the catalogue now is re-added below.
        self.remove(removed)
        self.add(changes.updated_ids, changes.updated_vectors)
        self.seq = latest
        self._live = rows.count()
        return True

    def search(self, query: np.ndarray, k: int, allowed: set[int] | None = None) -> list[Hit]:
        available = self._live if allowed is None else min(self._live, len(allowed))
        k = min(k, available)
        if k <= 0:
            return []
        self._index.set_ef(max(HNSW_EF_SEARCH, k))
        kwargs = {} if allowed is None else {"filter": allowed.__contains__}
        try:
            labels, distances = self._index.knn_query(np.asarray(query, dtype=np.float32).reshape(1, -1), k=k,
                                                      num_threads=1, **kwargs)
        except RuntimeError:
            # hnswlib refuses when the graph yields fewer than k live neighbours: ask for what it has.
            labels, distances = self._fallback_query(query, k, kwargs)
        return [Hit(int(label), float(1.0 - distance)) for label, distance in zip(labels[0], distances[0])]

    def neighbours(self, queries: np.ndarray, k: int, ef: int = 64, threads: int = 0,
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(labels, cosines), each N x k, of many queries at once on every core: for library-wide scans
        (duplicates), where a lower ef is plenty for the very close neighbours they look for."""
        k = min(k, self._live)
        if k <= 0 or len(queries) == 0:
            return np.empty((len(queries), 0), np.int64), np.empty((len(queries), 0), np.float32)
        self._index.set_ef(max(ef, k))
        try:
            labels, distances = self._index.knn_query(np.asarray(queries, dtype=np.float32), k=k,
                                                      num_threads=threads or -1)
        finally:
            self._index.set_ef(HNSW_EF_SEARCH)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)

    def _fallback_query(self, query: np.ndarray, k: int, kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
        for smaller in range(k - 1, 0, -1):
            try:
                return self._index.knn_query(query.reshape(1, -1), k=smaller, num_threads=1, **kwargs)
            except RuntimeError:
                continue
        return np.empty((1, 0), np.int64), np.empty((1, 0), np.float32)

    def save(self, data_dir: DataDir, catalog_id: str, model: str = "") -> None:
        """Write the index, then its state, each atomically: a reader that sees the new state sees the new file."""
        index_file, state_file = index_paths(data_dir, self.kind)
        remove_leftovers(index_file)  # from a save that was killed
        temporary = temporary_name(index_file)
        try:
            os.close(create_private(temporary))  # hnswlib would create it readable by everyone
            self._index.save_index(str(temporary))
            # hnswlib does not report a failed write (a full disk leaves a short file): check before trusting it.
            if temporary.stat().st_size != self._index.index_file_size():
                raise OSError(errno.ENOSPC, "the file was not written completely (is the disk full?)")
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise CatalogError(f"cannot write the vector index {index_file}: {error.strerror or error}") from error
        os.replace(temporary, index_file)
        size, digest = fingerprint(index_file)
        state = SavedIndexState(catalog_id=catalog_id, seq=self.seq, dim=self.dim, size=size, fingerprint=digest,
                                kind=self.kind, model=model)
        write_json_atomically(state_file, state.__dict__)

    def persist(self, catalog: Catalog, data_dir: DataDir) -> None:
        """Catch up with the catalogue, save, and drop the tombstones the saved file no longer needs.

        Callers hold the writer lock.
        """
        self.catch_up(catalog)
        self.save(data_dir, catalog.settings.get("catalog_id") or "", _model_key(catalog))
        _rows(catalog, self.kind).prune_tombstones(self.seq)
