"""Region vectors (`index --regions`): a few crops of each photo embedded on their own, so that a small object
can be found by the crop it fills. Each region belongs to its file and goes with it.

They are a second table of vectors beside the files' (clipsearch.store.vectors), with an HNSW index of its own
(clipsearch.store.hnsw, kind "regions"): the same change sequence numbers, and tombstones in a table of their
own, so a database without regions is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from clipsearch.store.connection import Connection
from clipsearch.store.rows import chunked, encode_path
from clipsearch.store.settings import SettingsRepository
from clipsearch.store.sqlite_guard import guarded
from clipsearch.store.vectors import VectorTable, vector_blob

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


class RegionsRepository(VectorTable):
    """The `regions` table and its tombstones, `removed_regions`."""

    def __init__(self, db: Connection, settings: SettingsRepository) -> None:
        super().__init__(db, settings, table="regions", tombstones="removed_regions",
                         pruned_setting="regions_pruned_seq")

    @guarded
    def any(self) -> bool:
        return self._conn.execute("SELECT 1 FROM regions LIMIT 1").fetchone() is not None

    @guarded
    def vectors_of_files(self, file_ids: Sequence[int] | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(region ids, vectors) in chunks: every region, or those of the given files."""
        yield from self.vectors() if file_ids is None else self._in_parts("file_id", file_ids)

    @guarded
    def records(self, ids: Sequence[int]) -> dict[int, RegionRecord]:
        found: dict[int, RegionRecord] = {}
        for part, marks in chunked(ids):
            for row in self._conn.execute(f"SELECT id, file_id, x, y, w, h FROM regions WHERE id IN ({marks})", part):
                found[row[0]] = RegionRecord(row[0], row[1], tuple(row[2:6]))
        return found

    @guarded
    def files_without(self) -> set[int]:
        """The ids of the files that have no regions."""
        return {r[0] for r in self._conn.execute(
            "SELECT id FROM files WHERE NOT EXISTS (SELECT 1 FROM regions WHERE regions.file_id = files.id)")}

    # writes (in the caller's transaction) -------------------------------------------------------------
    @guarded
    def replace(self, regions: dict[str, Sequence[NewRegion]], seq: int) -> None:
        """The regions of files (by path, as just written), in place of any they had."""
        ids = {path: row[0] for path in regions
               for row in self._conn.execute("SELECT id FROM files WHERE path = ?", (encode_path(path),))}
        self.remove_of_files(list(ids.values()), seq)
        self._conn.executemany(
            "INSERT INTO regions (file_id, x, y, w, h, seq, vector) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(ids[path], r.x, r.y, r.w, r.h, seq, vector_blob(r.vector))
             for path, found in regions.items() if path in ids for r in found])

    @guarded
    def remove_of_files(self, file_ids: Sequence[int], seq: int) -> None:
        for part, marks in chunked(file_ids):
            gone = [r[0] for r in self._conn.execute(f"SELECT id FROM regions WHERE file_id IN ({marks})", part)]
            self.bury(gone, seq)
            self._conn.execute(f"DELETE FROM regions WHERE file_id IN ({marks})", part)

    @guarded
    def remove_all(self, seq: int) -> None:
        """A model switch: the regions are in the old model's space."""
        self._conn.execute("INSERT OR REPLACE INTO removed_regions (id, seq) SELECT id, ? FROM regions", (seq,))
        self._conn.execute("DELETE FROM regions")
