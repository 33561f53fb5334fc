"""Work that must survive a crash without showing before it is complete: a model switch in progress, and the
files handed to the decoders but not yet committed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsearch.store.rows import AT_OR_UNDER, FileRecord, NewFile, at_or_under, decode_path, encode_path, now_iso
from clipsearch.store.schema import FACTS_VERSION
from clipsearch.store.sqlite_guard import guarded


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


class Staging:
    """Part of Catalog: the `staged` and `in_flight` tables, and the model a switch is moving to."""

    _conn: sqlite3.Connection
    path: Path

    def get_json(self, key: str) -> dict | None:
        raise NotImplementedError  # Catalog's

    def set_setting(self, key: str, value: str) -> None:
        raise NotImplementedError  # Catalog's

    def switch_target(self) -> dict | None:
        """The identity (as recorded) of the model an unfinished switch is moving to."""
        return self.get_json(SWITCH_SETTING)

    def set_switch_target(self, identity: dict | None) -> None:
        self.set_setting(SWITCH_SETTING, json.dumps(identity, sort_keys=True) if identity else "")

    # a model switch: files embedded with the new model --------------------------------------------
    @guarded
    def staged_count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM staged").fetchone()[0]

    @guarded
    def staged_stats(self, roots: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(size, mtime_ns) of every staged file under `roots`."""
        found: dict[str, tuple[int, int]] = {}
        for root in roots:
            rows = self._conn.execute(f"SELECT path, size, mtime_ns FROM staged WHERE {AT_OR_UNDER}",
                                      at_or_under(root))
            found.update((decode_path(path), (size, mtime)) for path, size, mtime in rows)
        return found

    @guarded
    def staged_reusable(self, rowid: int) -> tuple[FileRecord, np.ndarray] | None:
        """A staged file's facts and vector, for a copy of it (rowid, as HashLookup finds staged files)."""
        row = self._conn.execute("SELECT path, width, height, taken_at, camera_make, camera_model, vector FROM staged "
                                 "WHERE rowid = ?", (rowid,)).fetchone()
        if row is None:
            return None
        return FileRecord(rowid, decode_path(row[0]), *row[1:6]), np.frombuffer(row[6], dtype=np.float32)

    @guarded
    def stage_files(self, files: Sequence[NewFile]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO staged (path, size, mtime_ns, hash, width, height, taken_at, camera_make, "
            "camera_model, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(encode_path(f.path), f.size, f.mtime_ns, f.hash, f.width, f.height, f.taken_at, f.camera_make,
              f.camera_model, np.ascontiguousarray(f.vector, dtype=np.float32).tobytes()) for f in files],
        )
        self._conn.executemany("DELETE FROM failures WHERE path = ?", [(encode_path(f.path),) for f in files])

    @guarded
    def unstage_paths(self, paths: Sequence[str]) -> None:
        self._conn.executemany("DELETE FROM staged WHERE path = ?", [(encode_path(p),) for p in paths])

    @guarded
    def unstage_under(self, paths: Sequence[str]) -> None:
        for path in paths:
            self._conn.execute(f"DELETE FROM staged WHERE {AT_OR_UNDER}", at_or_under(path))

    @guarded
    def clear_staged(self) -> None:
        self._conn.execute("DELETE FROM staged")

    @guarded
    def swap_in_staged(self, seq: int) -> SwapResult:
        """Make the staged files the catalogue's files (inside the caller's transaction). A file that stays keeps
        its row id; rows that were not staged go, with tombstones."""
        stamp = now_iso()
        removed = [row[0] for row in self._conn.execute(
            "SELECT id FROM files WHERE path NOT IN (SELECT path FROM staged)")]
        self._conn.execute("DELETE FROM files WHERE path NOT IN (SELECT path FROM staged)")
        self._conn.execute("DELETE FROM tags")  # the new model tags again (clipsearch tag)
        self._conn.executemany("INSERT OR REPLACE INTO removed (id, seq) VALUES (?, ?)", [(i, seq) for i in removed])
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

    # files being decoded: what a crash was busy with -----------------------------------------------
    @guarded
    def in_flight(self) -> dict[str, InFlight]:
        rows = self._conn.execute("SELECT path, size, mtime_ns, attempts FROM in_flight").fetchall()
        return {decode_path(p): InFlight(decode_path(p), size, mtime, attempts) for p, size, mtime, attempts in rows}

    @guarded
    def mark_in_flight(self, files: Sequence[InFlight]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO in_flight (path, size, mtime_ns, attempts) VALUES (?, ?, ?, ?)",
            [(encode_path(f.path), f.size, f.mtime_ns, f.attempts) for f in files],
        )

    @guarded
    def clear_in_flight(self, paths: Sequence[str] | None = None) -> None:
        if paths is None:
            self._conn.execute("DELETE FROM in_flight")
        else:
            self._conn.executemany("DELETE FROM in_flight WHERE path = ?", [(encode_path(p),) for p in paths])
