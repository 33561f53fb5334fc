"""Work that must survive a crash without showing before it is complete: a model switch in progress, and the
files handed to the decoders but not yet committed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clipsearch.store.connection import Connection, Repository
from clipsearch.store.crawl_memory import FailuresRepository
from clipsearch.store.rows import AT_OR_UNDER, FileRecord, NewFile, at_or_under, decode_path, encode_path, now_iso
from clipsearch.store.schema import FACTS_VERSION
from clipsearch.store.settings import SettingsRepository
from clipsearch.store.sqlite_guard import guarded
from clipsearch.store.tags import TagsRepository
from clipsearch.store.vectors import VectorTable, vector_blob


@dataclass(frozen=True)
class InFlight:
    path: str
    size: int
    mtime_ns: int
    attempts: int  # runs that died while this file was being decoded


@dataclass(frozen=True)
class SwapResult:
    replaced: int
    added: int
    removed: list[int]


SWITCH_SETTING = "model_switch"  # the identity of the model a switch is moving to


class StagingRepository(Repository):
    """The `staged` table, and the model a switch is moving to. Swapping the staged files in replaces the files'
    vectors (with tombstones) and their tags, through the repositories given here."""

    def __init__(self, db: Connection, settings: SettingsRepository, *, files: VectorTable, tags: TagsRepository,
                 failures: FailuresRepository) -> None:
        super().__init__(db)
        self._settings = settings
        self._files = files
        self._tags = tags
        self._failures = failures

    def switch_target(self) -> dict | None:
        """The identity (as recorded) of the model an unfinished switch is moving to."""
        return self._settings.get_json(SWITCH_SETTING)

    def set_switch_target(self, identity: dict | None) -> None:
        self._settings.set(SWITCH_SETTING, json.dumps(identity, sort_keys=True) if identity else "")

    # a model switch: files embedded with the new model --------------------------------------------
    @guarded
    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM staged").fetchone()[0]

    @guarded
    def stats(self, roots: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(size, mtime_ns) of every staged file under `roots`."""
        found: dict[str, tuple[int, int]] = {}
        for root in roots:
            rows = self._conn.execute(f"SELECT path, size, mtime_ns FROM staged WHERE {AT_OR_UNDER}",
                                      at_or_under(root))
            found.update((decode_path(path), (size, mtime)) for path, size, mtime in rows)
        return found

    @guarded
    def reusable(self, rowid: int) -> tuple[FileRecord, np.ndarray] | None:
        """A staged file's facts and vector, for a copy of it (rowid, as HashReader finds staged files)."""
        row = self._conn.execute("SELECT path, width, height, taken_at, camera_make, camera_model, vector FROM staged "
                                 "WHERE rowid = ?", (rowid,)).fetchone()
        if row is None:
            return None
        return FileRecord(rowid, decode_path(row[0]), *row[1:6]), np.frombuffer(row[6], dtype=np.float32)

    @guarded
    def stage(self, files: Sequence[NewFile]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO staged (path, size, mtime_ns, hash, width, height, taken_at, camera_make, "
            "camera_model, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(encode_path(f.path), f.size, f.mtime_ns, f.hash, f.width, f.height, f.taken_at, f.camera_make,
              f.camera_model, vector_blob(f.vector)) for f in files],
        )
        self._failures.forget([f.path for f in files])

    @guarded
    def unstage(self, paths: Sequence[str]) -> None:
        self._conn.executemany("DELETE FROM staged WHERE path = ?", [(encode_path(p),) for p in paths])

    @guarded
    def unstage_under(self, paths: Sequence[str]) -> None:
        for path in paths:
            self._conn.execute(f"DELETE FROM staged WHERE {AT_OR_UNDER}", at_or_under(path))

    @guarded
    def clear(self) -> None:
        self._conn.execute("DELETE FROM staged")

    @guarded
    def swap_in(self, seq: int) -> SwapResult:
        """Make the staged files the catalogue's files (inside the caller's transaction). A file that stays keeps
        its row id; rows that were not staged go, with tombstones."""
        stamp = now_iso()
        removed = [row[0] for row in self._conn.execute(
            "SELECT id FROM files WHERE path NOT IN (SELECT path FROM staged)")]
        self._conn.execute("DELETE FROM files WHERE path NOT IN (SELECT path FROM staged)")
        self._tags.clear()  # the new model tags again (clipsearch tag)
        self._files.bury(removed, seq)
        replaced = self._conn.execute(
            "UPDATE files SET size = s.size, mtime_ns = s.mtime_ns, hash = s.hash, width = s.width, "
            "height = s.height, taken_at = s.taken_at, camera_make = s.camera_make, camera_model = s.camera_model, "
            "facts = ?, vector = s.vector, seq = ?, indexed_at = ? FROM staged AS s WHERE files.path = s.path",
            (FACTS_VERSION, seq, stamp)).rowcount
        added = self._conn.execute(
            "INSERT INTO files (path, size, mtime_ns, hash, width, height, taken_at, camera_make, camera_model, "
            "facts, indexed_at, seq, vector) SELECT path, size, mtime_ns, hash, width, height, taken_at, "
            "camera_make, camera_model, ?, ?, ?, vector FROM staged WHERE path NOT IN (SELECT path FROM files)",
            (FACTS_VERSION, stamp, seq)).rowcount
        self._conn.execute("DELETE FROM staged")
        return SwapResult(replaced, added, removed)

    @guarded
    def content_hashes(self) -> frozenset[str]:
        """Every content hash staged: for workers that cannot read the catalogue, to tell the files whose vectors
        with the new model it already holds."""
        return frozenset(row[0] for row in self._conn.execute("SELECT hash FROM staged WHERE hash IS NOT NULL"))


class InFlightRepository(Repository):
    """The `in_flight` table: files handed to the decoders and not yet committed, so a crash is known after."""

    @guarded
    def all(self) -> dict[str, InFlight]:
        rows = self._conn.execute("SELECT path, size, mtime_ns, attempts FROM in_flight").fetchall()
        return {decode_path(p): InFlight(decode_path(p), size, mtime, attempts) for p, size, mtime, attempts in rows}

    @guarded
    def mark(self, files: Sequence[InFlight]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO in_flight (path, size, mtime_ns, attempts) VALUES (?, ?, ?, ?)",
            [(encode_path(f.path), f.size, f.mtime_ns, f.attempts) for f in files],
        )

    @guarded
    def clear(self, paths: Sequence[str] | None = None) -> None:
        if paths is None:
            self._conn.execute("DELETE FROM in_flight")
        else:
            self._conn.executemany("DELETE FROM in_flight WHERE path = ?", [(encode_path(p),) for p in paths])
