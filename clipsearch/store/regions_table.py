"""Region vectors (`index --regions`): a few crops of each photo embedded on their own, so that a small object
can be found by the crop it fills. Each region belongs to its file and goes with it.

They form a second vector index beside the files' (clipsearch.store.hnsw, kind "regions"): the same change
sequence numbers and tombstones, in tables of their own, so a database without regions is unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsearch.store.rows import Changes, chunked
from clipsearch.store.sqlite_guard import guarded

REGIONS_SETTING = "regions"  # JSON {"grid": N}: new and changed files get regions; absent: none are made


@dataclass(frozen=True)
class NewRegion:
    x: int
    y: int
    w: int
    h: int
    vector: np.ndarray


@dataclass(frozen=True)
class RegionRecord:
    id: int
    file_id: int
    box: tuple[int, int, int, int]


class RegionsTable:
    """Part of Catalog: the `regions` and `removed_regions` tables."""

    _conn: sqlite3.Connection
    path: Path

    @guarded
    def has_regions(self) -> bool:
        return self._conn.execute("SELECT 1 FROM regions LIMIT 1").fetchone() is not None

    @guarded
    def region_count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM regions").fetchone()[0]

    @guarded
    def region_ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self._conn.execute("SELECT id FROM regions")), dtype=np.int64)

    @guarded
    def region_vectors(self, file_ids: Sequence[int] | None = None,
                       chunk: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(region ids, vectors) in chunks: every region, or those of the given files."""
        from clipsearch.store.files_table import stack_vectors

        if file_ids is None:
            cursor = self._conn.execute("SELECT id, vector FROM regions ORDER BY id")
            while rows := cursor.fetchmany(chunk):
                yield stack_vectors(rows, self.path)
            return
        for part, marks in chunked(file_ids):
            rows = self._conn.execute(f"SELECT id, vector FROM regions WHERE file_id IN ({marks})", part).fetchall()
            if rows:
                yield stack_vectors(rows, self.path)

    @guarded
    def region_records(self, ids: Sequence[int]) -> dict[int, RegionRecord]:
        found: dict[int, RegionRecord] = {}
        for part, marks in chunked(ids):
            for row in self._conn.execute(f"SELECT id, file_id, x, y, w, h FROM regions WHERE id IN ({marks})", part):
                found[row[0]] = RegionRecord(row[0], row[1], tuple(row[2:6]))
        return found

    @guarded
    def region_changes_since(self, seq: int) -> Changes:
        from clipsearch.store.files_table import stack_vectors

        removed = [r[0] for r in self._conn.execute("SELECT id FROM removed_regions WHERE seq > ?", (seq,))]
        rows = self._conn.execute("SELECT id, vector FROM regions WHERE seq > ?", (seq,)).fetchall()
        ids, vectors = stack_vectors(rows, self.path) if rows else (np.empty(0, np.int64), np.empty((0, 0)))
        pruned = int((self._conn.execute("SELECT value FROM settings WHERE key = 'regions_pruned_seq'").fetchone()
                      or ["0"])[0])
        return Changes(removed, ids, vectors, removals_complete=seq >= pruned)

    @guarded
    def prune_region_tombstones(self, up_to_seq: int) -> None:
        with self.transaction():  # type: ignore[attr-defined]
            self._conn.execute("DELETE FROM removed_regions WHERE seq <= ?", (up_to_seq,))
            self._conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('regions_pruned_seq', ?)",
                               (str(up_to_seq),))

    @guarded
    def files_without_regions(self) -> set[int]:
        return {r[0] for r in self._conn.execute(
            "SELECT id FROM files WHERE NOT EXISTS (SELECT 1 FROM regions WHERE regions.file_id = files.id)")}

    # writes (in the caller's transaction) -------------------------------------------------------------
    @guarded
    def replace_regions(self, regions: dict[str, Sequence[NewRegion]], seq: int) -> None:
        """The regions of files (by path, as just written), in place of any they had."""
        from clipsearch.store.rows import encode_path

        ids = {path: row[0] for path in regions
               for row in self._conn.execute("SELECT id FROM files WHERE path = ?", (encode_path(path),))}
        self.remove_regions_of(list(ids.values()), seq)
        self._conn.executemany(
            "INSERT INTO regions (file_id, x, y, w, h, seq, vector) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(ids[path], r.x, r.y, r.w, r.h, seq, np.ascontiguousarray(r.vector, dtype=np.float32).tobytes())
             for path, found in regions.items() if path in ids for r in found])

    @guarded
    def remove_regions_of(self, file_ids: Sequence[int], seq: int) -> None:
        for part, marks in chunked(file_ids):
            gone = [r[0] for r in self._conn.execute(f"SELECT id FROM regions WHERE file_id IN ({marks})", part)]
            self._conn.executemany("INSERT OR REPLACE INTO removed_regions (id, seq) VALUES (?, ?)",
                                   [(i, seq) for i in gone])
            self._conn.execute(f"DELETE FROM regions WHERE file_id IN ({marks})", part)

    @guarded
    def remove_all_regions(self, seq: int) -> None:
        """A model switch: the regions are in the old model's space."""
        self._conn.execute("INSERT OR REPLACE INTO removed_regions (id, seq) SELECT id, ? FROM regions", (seq,))
        self._conn.execute("DELETE FROM regions")
