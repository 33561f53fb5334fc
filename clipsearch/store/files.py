"""The `files` table: every indexed file, its facts and its vector; what searches read and indexing writes.

It is a table of vectors (clipsearch.store.vectors): every change to a vector carries a sequence number
(`seq`), and removals leave a tombstone in `removed`, so the derived HNSW file can be caught up from any
earlier state instead of rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from clipsearch.store.connection import Connection
from clipsearch.store.crawl_memory import FailuresRepository
from clipsearch.store.regions import RegionsRepository
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
from clipsearch.store.settings import SettingsRepository
from clipsearch.store.sqlite_guard import guarded
from clipsearch.store.tags import TagsRepository
from clipsearch.store.vectors import VECTOR_CHUNK, VectorTable, as_vector, vector_blob

_RECORD_COLUMNS = "id, path, width, height, taken_at, camera_make, camera_model"


class FilesRepository(VectorTable):
    """Reads and writes of `files` (writers hold the writer lock and a transaction). A file's regions, tags and
    remembered failure go with the file's vector, through the repositories given here."""

    def __init__(self, db: Connection, settings: SettingsRepository, *, regions: RegionsRepository,
                 tags: TagsRepository, failures: FailuresRepository) -> None:
        super().__init__(db, settings, table="files", tombstones="removed", pruned_setting="pruned_seq")
        self._regions = regions
        self._tags = tags
        self._failures = failures

    # reads --------------------------------------------------------------------------------------
    @guarded
    def known(self, roots: Sequence[str]) -> dict[str, KnownFile]:
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
            for row in self._conn.execute(f"SELECT {_RECORD_COLUMNS}, size, mtime_ns FROM files WHERE id IN ({marks})",
                                          part):
                found[row[0]] = FileRecord(row[0], decode_path(row[1]), *row[2:])
        return found

    @guarded
    def find(self, path: str) -> tuple[FileRecord, np.ndarray] | None:
        row = self._conn.execute(f"SELECT {_RECORD_COLUMNS}, vector FROM files WHERE path = ?",
                                 (encode_path(path),)).fetchone()
        if row is None:
            return None
        return FileRecord(row[0], decode_path(row[1]), *row[2:7]), as_vector(row[7], self.path)

    @guarded
    def reusable(self, file_id: int) -> tuple[FileRecord, np.ndarray] | None:
        """A row's facts and vector, for a copy of its file that needs neither decoding nor embedding."""
        row = self._conn.execute(f"SELECT {_RECORD_COLUMNS}, vector FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            return None
        return FileRecord(row[0], decode_path(row[1]), *row[2:7]), as_vector(row[7], self.path)

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
        return None if row is None else as_vector(row[0], self.path)

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
    def content_hashes(self) -> frozenset[str]:
        """Every content hash catalogued: for workers that cannot read the catalogue, to tell the files whose
        vectors it already holds."""
        return frozenset(row[0] for row in self._conn.execute("SELECT hash FROM files WHERE hash IS NOT NULL"))

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
    def vectors_under(self, folder: str, chunk: int = VECTOR_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of the files under a folder, in chunks, read in one pass along the path index."""
        yield from self._stream(f"SELECT id, vector FROM files WHERE {UNDER}", under(folder), chunk)

    # writes -------------------------------------------------------------------------------------
    @guarded
    def add(self, files: Sequence[NewFile], seq: int) -> None:
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
                 f.camera_model, FACTS_VERSION, stamp, seq, vector_blob(f.vector))
                for f in files
            ],
        )
        self._failures.forget([f.path for f in files])
        if self._regions.any():  # a new vector: its old regions go
            query = "SELECT id FROM files WHERE path = ?"
            ids = [row[0] for f in files for row in self._conn.execute(query, (encode_path(f.path),))]
            self._regions.remove_of_files(ids, seq)

    @guarded
    def move(self, moves: Sequence[Move]) -> None:
        # The vector and its label stay: only the row's path changes, so the index needs no update.
        self._conn.executemany(
            "UPDATE files SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
            [(encode_path(m.new_path), m.size, m.mtime_ns, m.id) for m in moves],
        )

    @guarded
    def touch(self, updates: Sequence[tuple[int, int, int]]) -> None:
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
    def remove(self, ids: Sequence[int], seq: int) -> None:
        """Remove these files, with their tags and regions, as change `seq`."""
        ids = [int(i) for i in ids]
        self._tags.remove_of_files(ids)
        self._regions.remove_of_files(ids, seq)
        self._conn.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in ids])
        self.bury(ids, seq)

    @guarded
    def remove_under(self, paths: Sequence[str], seq: int) -> int:
        """Remove the files at or under `paths`; returns how many went."""
        ids = [r[0] for path in paths
               for r in self._conn.execute(f"SELECT id FROM files WHERE {AT_OR_UNDER}", at_or_under(path))]
        self.remove(ids, seq)
        return len(ids)

