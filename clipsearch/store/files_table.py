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
from clipsearch.store.schema import FACTS_VERSION
from clipsearch.store.sqlite_guard import guarded

_RECORD_COLUMNS = "id, path, width, height, taken_at, camera_make, camera_model"


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
        return FileRecord(row[0], decode_path(row[1]), *row[2:7]), _vector(row[7], self.path)

    @guarded
    def reusable(self, file_id: int) -> tuple[FileRecord, np.ndarray] | None:
        """A row's facts and vector, for a copy of its file that needs neither decoding nor embedding."""
        row = self._conn.execute(f"SELECT {_RECORD_COLUMNS}, vector FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            return None
        return FileRecord(row[0], decode_path(row[1]), *row[2:7]), _vector(row[7], self.path)

    @guarded
    def duplicate_facts(self, folders: Sequence[str] = ()) -> list[tuple]:
        """(id, path, size, width, height, taken_at, camera_make, camera_model, hash) of every file, or of those
        under any of `folders`: what telling duplicates apart needs."""
        where, parameters = "1", []
        if folders:
            where = " OR ".join([UNDER] * len(folders))
            parameters = [bound for folder in folders for bound in under(folder)]
        rows = self._conn.execute("SELECT id, path, size, width, height, taken_at, camera_make, camera_model, hash "
                                  f"FROM files WHERE {where} ORDER BY id", parameters)
        return [(row[0], decode_path(row[1]), *row[2:]) for row in rows]

    @guarded
    def ids_of(self, paths: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for part, marks in chunked([encode_path(p) for p in paths]):
            rows = self._conn.execute(f"SELECT path, id FROM files WHERE path IN ({marks})", part)
            found.update((decode_path(path), file_id) for path, file_id in rows)
        return found

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
    def filtered_ids(self, folders: Sequence[str] = (), *, after: str | None = None, before: str | None = None,
                     undated: bool = False, camera: str | None = None, tags: Sequence[str] = (),
                     no_tags: Sequence[str] = ()) -> np.ndarray:
        """The ids of the files that pass every filter given (under any of `folders`; captured from `after` and
        before `before`, or undated if `undated`; a camera make or model containing `camera`; every tag in `tags`
        and none in `no_tags`)."""
        clauses: list[str] = []
        parameters: list[object] = []
        if folders:
            clauses.append("(" + " OR ".join([UNDER] * len(folders)) + ")")
            parameters += [bound for folder in folders for bound in under(folder)]
        dated = [clause for clause, value in (("taken_at >= ?", after), ("taken_at < ?", before)) if value]
        if dated:
            joined = " AND ".join(dated)
            clauses.append(f"(taken_at IS NULL OR ({joined}))" if undated else f"({joined})")
            parameters += [value for value in (after, before) if value]
        if camera:
            clauses.append("(instr(lower(coalesce(camera_make, '')), ?) "
                           "OR instr(lower(coalesce(camera_model, '')), ?))")
            parameters += [camera.lower()] * 2
        for tag in tags:
            clauses.append("id IN (SELECT file_id FROM tags WHERE label = ?)")
            parameters.append(tag)
        for tag in no_tags:
            clauses.append("id NOT IN (SELECT file_id FROM tags WHERE label = ?)")
            parameters.append(tag)
        where = " AND ".join(clauses) or "1"
        rows = self._conn.execute(f"SELECT id FROM files WHERE {where}", parameters)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    @guarded
    def content_hashes(self, staged: bool = False) -> frozenset[str]:
        """Every content hash catalogued (or staged, during a model switch): for workers that cannot read the
        catalogue, to tell the files whose vectors it already holds."""
        table = "staged" if staged else "files"
        return frozenset(row[0] for row in self._conn.execute(f"SELECT hash FROM {table} WHERE hash IS NOT NULL"))

    @guarded
    def cameras(self) -> list[tuple[str | None, str | None, int]]:
        """(make, model, photos) of every camera in the EXIF of the catalogued photos, most photos first."""
        return self._conn.execute(
            "SELECT camera_make, camera_model, count(*) FROM files WHERE camera_model IS NOT NULL "
            "OR camera_make IS NOT NULL GROUP BY camera_make, camera_model ORDER BY 3 DESC").fetchall()

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
            "INSERT INTO files (path, size, mtime_ns, hash, width, height, taken_at, camera_make, camera_model, "
            "facts, indexed_at, seq, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO "
            "UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash, "
            "width = excluded.width, height = excluded.height, taken_at = excluded.taken_at, "
            "camera_make = excluded.camera_make, camera_model = excluded.camera_model, facts = excluded.facts, "
            "indexed_at = excluded.indexed_at, seq = excluded.seq, vector = excluded.vector",
            [
                (encode_path(f.path), f.size, f.mtime_ns, f.hash, f.width, f.height, f.taken_at, f.camera_make,
                 f.camera_model, FACTS_VERSION, stamp, seq, np.ascontiguousarray(f.vector, dtype=np.float32).tobytes())
                for f in files
            ],
        )
        self._conn.executemany("DELETE FROM failures WHERE path = ?", [(encode_path(f.path),) for f in files])
        if self._conn.execute("SELECT 1 FROM regions LIMIT 1").fetchone():  # a new vector: its old regions go
            query = "SELECT id FROM files WHERE path = ?"
            ids = [row[0] for f in files for row in self._conn.execute(query, (encode_path(f.path),))]
            self.remove_regions_of(ids, seq)  # type: ignore[attr-defined]  (Catalog's RegionsTable)

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
    def stale_facts(self, roots: Sequence[str]) -> dict[str, int]:
        """path -> id of the files under `roots` whose facts were read before cameras were (older databases)."""
        found: dict[str, int] = {}
        for root in roots:
            rows = self._conn.execute(f"SELECT path, id FROM files WHERE facts < ? AND {AT_OR_UNDER}",
                                      (FACTS_VERSION, *at_or_under(root)))
            found.update((decode_path(path), file_id) for path, file_id in rows)
        return found

    @guarded
    def update_facts(self, facts: Sequence[tuple[int, int | None, int | None, str | None, str | None, str | None]],
                     ) -> None:
        """(id, width, height, taken_at, camera_make, camera_model): facts read again; the vector stays."""
        self._conn.executemany(
            "UPDATE files SET width = ?, height = ?, taken_at = ?, camera_make = ?, camera_model = ?, facts = ? "
            "WHERE id = ?", [(*rest, FACTS_VERSION, file_id) for file_id, *rest in facts])

    @guarded
    def remove_ids(self, ids: Sequence[int], seq: int) -> None:
        rows = [(int(i),) for i in ids]
        self._conn.executemany("DELETE FROM tags WHERE file_id = ?", rows)
        self.remove_regions_of([i for (i,) in rows], seq)  # type: ignore[attr-defined]  (Catalog's RegionsTable)
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

