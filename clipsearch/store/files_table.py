"""The `files` table: every indexed file, its facts and its vector; what searches read and indexing writes.

Every change to a vector carries a sequence number (`seq`), and removals leave a tombstone in
`removed`, so the derived HNSW file can be caught up from any earlier state instead of rebuilt.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from clipsearch.errors import CatalogError
from clipsearch.store.rows import (
    AT_OR_UNDER,
    UNDER,
    FileRecord,
    KnownFile,
    Move,
    NewFile,
    at_or_under,
    chunked,
    decode_path,
    encode_path,
    now_iso,
    under,
)
from clipsearch.store.sqlite_guard import guarded

_RECORD_COLUMNS = "id, path, width, height, taken_at"


class FilesTable:
    """Part of Catalog: reads and writes of `files` (writers hold the writer lock and a transaction)."""

    _conn: sqlite3.Connection
    path: Path

    # reads --------------------------------------------------------------------------------------
    @guarded
    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM files").fetchone()[0]

    @guarded
    def known_files(self, roots: Sequence[str]) -> dict[str, KnownFile]:
        """Every catalogued file under any of `roots` (folders or single files), keyed by path."""
        known: dict[str, KnownFile] = {}
        for root in roots:
            rows = self._conn.execute(f"SELECT path, id, size, mtime_ns, hash FROM files WHERE {AT_OR_UNDER}",
                                      at_or_under(root))
            for path, *rest in rows:
                known[decode_path(path)] = KnownFile(*rest)
        return known

    @guarded
    def records(self, ids: Sequence[int]) -> dict[int, FileRecord]:
        found: dict[int, FileRecord] = {}
        for part, marks in chunked(ids):
            for row in self._conn.execute(f"SELECT {_RECORD_COLUMNS} FROM files WHERE id IN ({marks})", part):
                found[row[0]] = FileRecord(row[0], decode_path(row[1]), *row[2:])
        return found

    @guarded
    def find(self, path: str) -> tuple[FileRecord, np.ndarray] | None:
        row = self._conn.execute(f"SELECT {_RECORD_COLUMNS}, vector FROM files WHERE path = ?",
                                 (encode_path(path),)).fetchone()
        if row is None:
            return None
        return FileRecord(row[0], decode_path(row[1]), *row[2:5]), _vector(row[5], self.path)

    @guarded
    def reusable(self, file_id: int) -> tuple[FileRecord, np.ndarray] | None:
        """A row's facts and vector, for a copy of its file that needs neither decoding nor embedding."""
        row = self._conn.execute(f"SELECT {_RECORD_COLUMNS}, vector FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            return None
        return FileRecord(row[0], decode_path(row[1]), *row[2:5]), _vector(row[5], self.path)

    @guarded
    def vector_by_hash(self, digest: str) -> np.ndarray | None:
        """The vector of a file with this content, if one is indexed."""
        row = self._conn.execute("SELECT vector FROM files WHERE hash = ? LIMIT 1", (digest,)).fetchone()
        return None if row is None else _vector(row[0], self.path)

    @guarded
    def ids_under(self, folder: str) -> np.ndarray:
        rows = self._conn.execute(f"SELECT id FROM files WHERE {UNDER}", under(folder))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    @guarded
    def count_under(self, folder: str) -> int:
        return self._conn.execute(f"SELECT count(*) FROM files WHERE {UNDER}", under(folder)).fetchone()[0]

    @guarded
    def vectors_under(self, folder: str, chunk: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of the files under a folder, in chunks, read in one pass along the path index."""
        cursor = self._conn.execute(f"SELECT id, vector FROM files WHERE {UNDER}", under(folder))
        while rows := cursor.fetchmany(chunk):
            yield stack_vectors(rows, self.path)

    @guarded
    def vectors(self, ids: Sequence[int] | None = None, chunk: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in chunks: all files, or the given ids."""
        if ids is None:
            cursor = self._conn.execute("SELECT id, vector FROM files ORDER BY id")
            while rows := cursor.fetchmany(chunk):
                yield stack_vectors(rows, self.path)
            return
        for part, marks in chunked(ids):
            rows = self._conn.execute(f"SELECT id, vector FROM files WHERE id IN ({marks})", part).fetchall()
            if rows:
                yield stack_vectors(rows, self.path)

    @guarded
    def ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self._conn.execute("SELECT id FROM files")), dtype=np.int64)

    # writes -------------------------------------------------------------------------------------
    @guarded
    def add_files(self, files: Sequence[NewFile], seq: int) -> None:
        stamp = now_iso()
        self._conn.executemany(
            "INSERT INTO files (path, size, mtime_ns, hash, width, height, taken_at, indexed_at, seq, vector) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, hash = excluded.hash, width = excluded.width, height = excluded.height, "
            "taken_at = excluded.taken_at, indexed_at = excluded.indexed_at, seq = excluded.seq, "
            "vector = excluded.vector",
            [
                (encode_path(f.path), f.size, f.mtime_ns, f.hash, f.width, f.height, f.taken_at, stamp, seq,
                 np.ascontiguousarray(f.vector, dtype=np.float32).tobytes())
                for f in files
            ],
        )
        self._conn.executemany("DELETE FROM failures WHERE path = ?", [(encode_path(f.path),) for f in files])

    @guarded
    def move_files(self, moves: Sequence[Move]) -> None:
        # The vector and its label stay: only the row's path changes, so the index needs no update.
        self._conn.executemany(
            "UPDATE files SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
            [(encode_path(m.new_path), m.size, m.mtime_ns, m.id) for m in moves],
        )

    @guarded
    def touch_files(self, updates: Sequence[tuple[int, int, int]]) -> None:
        """(id, size, mtime_ns) for files whose content is unchanged though their stat changed."""
        self._conn.executemany("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?",
                               [(size, mtime, file_id) for file_id, size, mtime in updates])

    @guarded
    def remove_ids(self, ids: Sequence[int], seq: int) -> None:
        rows = [(int(i),) for i in ids]
        self._conn.executemany("DELETE FROM files WHERE id = ?", rows)
        self._conn.executemany("INSERT OR REPLACE INTO removed (id, seq) VALUES (?, ?)", [(i, seq) for (i,) in rows])

    @guarded
    def remove_files_under(self, paths: Sequence[str], seq: int) -> int:
        """Remove the files at or under `paths`; returns how many went."""
        ids = [r[0] for path in paths
               for r in self._conn.execute(f"SELECT id FROM files WHERE {AT_OR_UNDER}", at_or_under(path))]
        self.remove_ids(ids, seq)
        return len(ids)


def _damaged_vectors(path: Path) -> CatalogError:
    return CatalogError(f"the catalogue {path} holds damaged vectors: run `clipsearch index --reindex` on your "
                        "folders")


def _vector(blob: bytes, path: Path) -> np.ndarray:
    # SQLite cannot tell a vector blob that lost bytes from a good one; numpy would fail with a riddle.
    if not blob or len(blob) % 4:
        raise _damaged_vectors(path)
    return np.frombuffer(blob, dtype=np.float32)


def stack_vectors(rows: list[tuple[int, bytes]], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of (id, vector blob) rows; a CatalogError if any blob is damaged."""
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    sizes = {len(r[1]) for r in rows}
    if len(sizes) > 1:
        raise _damaged_vectors(path)
    _vector(rows[0][1], path)
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    return ids, vectors

