"""A table of vectors: rows with an `id`, the number of the change that last wrote them (`seq`) and a `vector`
blob, and a table of tombstones (`id`, `seq`) for the rows removed.

The files' vectors (`files`, `removed`) and the regions' (`regions`, `removed_regions`) are two of them, each
with an HNSW index of its own (clipsearch.store.hnsw) that catches up from any earlier state through
`changes_since` instead of being rebuilt. Both share one change sequence (Catalog.next_seq).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from clipsearch.errors import CatalogError
from clipsearch.store.connection import Connection, Repository
from clipsearch.store.rows import Changes, chunked
from clipsearch.store.settings import SettingsRepository
from clipsearch.store.sqlite_guard import guarded

VECTOR_CHUNK = 20000  # rows read at a time when vectors are streamed


class VectorTable(Repository):
    """`table` of vectors with its `tombstones`; `pruned_setting` names how far the tombstones were pruned.

    The table and setting names are our own constants (the subclasses'), never data, so they are formatted into
    the SQL; every value is a `?` parameter.
    """

    def __init__(self, db: Connection, settings: SettingsRepository, *, table: str, tombstones: str,
                 pruned_setting: str) -> None:
        super().__init__(db)
        self._settings = settings
        self._table = table
        self._tombstones = tombstones
        self._pruned_setting = pruned_setting

    @guarded
    def count(self) -> int:
        return self._conn.execute(f"SELECT count(*) FROM {self._table}").fetchone()[0]

    @guarded
    def ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self._conn.execute(f"SELECT id FROM {self._table}")), dtype=np.int64)

    @guarded
    def vectors(self, ids: Sequence[int] | None = None,
                chunk: int = VECTOR_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in chunks: every row, or the given ids."""
        if ids is None:
            yield from self._stream(f"SELECT id, vector FROM {self._table} ORDER BY id", (), chunk)
            return
        yield from self._in_parts("id", ids)

    @guarded
    def changes_since(self, seq: int) -> Changes:
        """What changed after change `seq`: the ids removed, and the rows written, with their vectors."""
        removed = [r[0] for r in self._conn.execute(f"SELECT id FROM {self._tombstones} WHERE seq > ?", (seq,))]
        rows = self._conn.execute(f"SELECT id, vector FROM {self._table} WHERE seq > ?", (seq,)).fetchall()
        if rows:
            ids, vectors = stack_vectors(rows, self.path)
        else:
            ids, vectors = np.empty(0, np.int64), np.empty((0, 0), np.float32)
        return Changes(removed, ids, vectors, removals_complete=seq >= self.pruned_seq())

    @guarded
    def prune_tombstones(self, up_to_seq: int) -> None:
        """Drop the tombstones the saved index no longer needs, and remember how far: a reader holding an older
        index (`clipsearch serve`) then knows its removals must be found another way."""
        with self.transaction():
            self._conn.execute(f"DELETE FROM {self._tombstones} WHERE seq <= ?", (up_to_seq,))
            if up_to_seq > self.pruned_seq():
                self._settings.set(self._pruned_setting, str(up_to_seq))

    @guarded
    def pruned_seq(self) -> int:
        return self._settings.get_int(self._pruned_setting)

    @guarded
    def bury(self, ids: Sequence[int], seq: int) -> None:
        """Tombstones for rows removed in change `seq` (in the caller's transaction)."""
        self._conn.executemany(f"INSERT OR REPLACE INTO {self._tombstones} (id, seq) VALUES (?, ?)",
                               [(int(i), seq) for i in ids])

    def _in_parts(self, column: str, values: Sequence[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of the rows whose `column` is one of `values`, a chunk of parameters at a time."""
        for part, marks in chunked(values):
            rows = self._conn.execute(f"SELECT id, vector FROM {self._table} WHERE {column} IN ({marks})",
                                      part).fetchall()
            if rows:
                yield stack_vectors(rows, self.path)

    def _stream(self, query: str, parameters: Sequence, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cursor = self._conn.execute(query, parameters)
        while rows := cursor.fetchmany(chunk):
            yield stack_vectors(rows, self.path)


def _damaged_vectors(path: Path) -> CatalogError:
    return CatalogError(f"the catalogue {path} holds damaged vectors: run `clipsearch index --reindex` on your "
                        "folders")


def as_vector(blob: bytes, path: Path) -> np.ndarray:
    """A vector blob as float32s; a CatalogError if it is damaged."""
    # SQLite cannot tell a vector blob that lost bytes from a good one; numpy would fail with a riddle.
    if not blob or len(blob) % 4:
        raise _damaged_vectors(path)
    return np.frombuffer(blob, dtype=np.float32)


def vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def stack_vectors(rows: list[tuple[int, bytes]], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of (id, vector blob) rows; a CatalogError if any blob is damaged."""
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    sizes = {len(r[1]) for r in rows}
    if len(sizes) > 1:
        raise _damaged_vectors(path)
    as_vector(rows[0][1], path)
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    return ids, vectors
