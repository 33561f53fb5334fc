"""The SQLite catalogue: files, their vectors, the model identity and the schema version.

It is the source of truth. Every change to a vector carries a sequence number (`seq`),
and removals leave a tombstone, so the derived HNSW file can be caught up from any
earlier state instead of being rebuilt.

Paths are stored as BLOBs of their exact bytes (os.fsencode): file names that are not
valid UTF-8 survive, and folder filters compare byte prefixes, so `%` and `_` in folder
names mean nothing special.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sqlite_utils

from clipsearch.errors import CatalogError

Migration = Callable[[sqlite_utils.Database], None]


def _create_tables(db: sqlite_utils.Database) -> None:
    db["files"].create(
        {
            "id": int, "path": bytes, "size": int, "mtime_ns": int, "hash": str, "width": int, "height": int,
            "taken_at": str, "indexed_at": str, "seq": int, "vector": bytes,
        },
        pk="id",
        not_null={"path", "size", "mtime_ns", "hash", "indexed_at", "seq", "vector"},
    )
    db["files"].create_index(["path"], unique=True)
    db["files"].create_index(["seq"])
    db["files"].create_index(["hash"])
    db["removed"].create({"id": int, "seq": int}, pk="id", not_null={"seq"})
    db["removed"].create_index(["seq"])
    db["failures"].create({"path": bytes, "size": int, "mtime_ns": int, "reason": str}, pk="path")
    db["roots"].create({"path": bytes, "indexed_at": str}, pk="path")
    db["settings"].create({"key": str, "value": str}, pk="key")


# Append only: position N (1-based) takes a catalogue from schema N-1 to N.
MIGRATIONS: tuple[Migration, ...] = (_create_tables,)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class KnownFile:
    id: int
    size: int
    mtime_ns: int
    hash: str


@dataclass(frozen=True)
class FileRecord:
    id: int
    path: str
    width: int | None
    height: int | None
    taken_at: str | None


@dataclass(frozen=True)
class NewFile:
    """A file ready to be written: its vector, or the id of a row whose vector it shares."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    width: int | None
    height: int | None
    taken_at: str | None
    vector: np.ndarray


@dataclass(frozen=True)
class Move:
    id: int
    new_path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Changes:
    removed: list[int]
    updated_ids: np.ndarray
    updated_vectors: np.ndarray


@dataclass(frozen=True)
class CatalogStats:
    files: int
    roots: list[str]
    last_indexed: str | None
    failures: int


def encode_path(path: str) -> bytes:
    return os.fsencode(path)


def decode_path(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else os.fsdecode(raw)


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def _prefix(folder: str) -> bytes:
    raw = encode_path(folder)
    return raw if raw.endswith(b"/") else raw + b"/"


class Catalog:
    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if not path.exists() and not create:
            raise CatalogError(f"no catalogue at {path}: run `clipsearch index FOLDER` first (or pass --db)")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
            self.db = sqlite_utils.Database(self._conn)
            self._conn.execute("PRAGMA busy_timeout = 30000")
            self._migrate(create)
        except CatalogError:
            raise
        except (sqlite3.DatabaseError, OSError) as error:
            raise CatalogError(f"cannot open the catalogue {path}: {error}") from error

    def _migrate(self, writable: bool) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.path} was written by a newer clipsearch (schema {version}, this one knows {SCHEMA_VERSION}): "
                "upgrade clipsearch, or use another --db"
            )
        if version == SCHEMA_VERSION:
            return
        if not writable:
            raise CatalogError(f"{self.path} needs upgrading: run `clipsearch index` once to migrate it")
        if version == 0 and self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise CatalogError(f"{self.path} is an SQLite file but not a clipsearch catalogue")
        self.db.enable_wal()
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                migration(self.db)
                self._conn.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        self._conn.close()

    def transaction(self) -> sqlite3.Connection:
        """`with catalog.transaction():` commits on success and rolls back on error."""
        return _Transaction(self._conn)

    # settings -----------------------------------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def get_json(self, key: str) -> dict | None:
        value = self.get_setting(key)
        return json.loads(value) if value else None

    def set_json(self, key: str, value: dict) -> None:
        self.set_setting(key, json.dumps(value, sort_keys=True))

    # reads --------------------------------------------------------------------------------------
    def current_seq(self) -> int:
        """The number of the latest change to any vector; it only ever grows."""
        return int(self.get_setting("seq") or 0)

    def next_seq(self) -> int:
        """Claim the next change number; call inside the transaction that makes the change."""
        seq = self.current_seq() + 1
        self.set_setting("seq", str(seq))
        return seq

    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM files").fetchone()[0]

    def known_files(self, roots: Sequence[str]) -> dict[str, KnownFile]:
        """Every catalogued file under any of `roots` (folders or single files), keyed by path."""
        known: dict[str, KnownFile] = {}
        for root in roots:
            raw, prefix = encode_path(root), _prefix(root)
            rows = self._conn.execute(
                "SELECT path, id, size, mtime_ns, hash FROM files WHERE path = ? OR substr(path, 1, ?) = ?",
                (raw, len(prefix), prefix),
            )
            for path, *rest in rows:
                known[decode_path(path)] = KnownFile(*rest)
        return known

    def known_failures(self, roots: Sequence[str]) -> dict[str, tuple[int, int]]:
        failures: dict[str, tuple[int, int]] = {}
        for root in roots:
            raw, prefix = encode_path(root), _prefix(root)
            rows = self._conn.execute(
                "SELECT path, size, mtime_ns FROM failures WHERE path = ? OR substr(path, 1, ?) = ?",
                (raw, len(prefix), prefix),
            )
            failures.update((decode_path(path), (size, mtime)) for path, size, mtime in rows)
        return failures

    def ids_by_hash(self, hashes: Iterable[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        hashes = list(set(hashes))
        for start in range(0, len(hashes), 500):
            chunk = hashes[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._conn.execute(f"SELECT hash, id FROM files WHERE hash IN ({marks})", chunk).fetchall())
        return found

    def records(self, ids: Sequence[int]) -> dict[int, FileRecord]:
        found: dict[int, FileRecord] = {}
        ids = list(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                f"SELECT id, path, width, height, taken_at FROM files WHERE id IN ({marks})", chunk
            ):
                found[row[0]] = FileRecord(row[0], decode_path(row[1]), *row[2:])
        return found

    def find(self, path: str) -> tuple[FileRecord, np.ndarray] | None:
        row = self._conn.execute(
            "SELECT id, path, width, height, taken_at, vector FROM files WHERE path = ?", (encode_path(path),)
        ).fetchone()
        if row is None:
            return None
        return FileRecord(row[0], decode_path(row[1]), *row[2:5]), np.frombuffer(row[5], dtype=np.float32)

    def ids_under(self, folder: str) -> np.ndarray:
        prefix = _prefix(folder)
        rows = self._conn.execute("SELECT id FROM files WHERE substr(path, 1, ?) = ?", (len(prefix), prefix))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def vectors(self, ids: Sequence[int] | None = None, chunk: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in chunks: all files, or the given ids."""
        if ids is None:
            cursor = self._conn.execute("SELECT id, vector FROM files ORDER BY id")
            while rows := cursor.fetchmany(chunk):
                yield _stack(rows)
            return
        ids = list(ids)
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            rows = self._conn.execute(
                f"SELECT id, vector FROM files WHERE id IN ({','.join('?' * len(part))})", part
            ).fetchall()
            if rows:
                yield _stack(rows)

    def changes_since(self, seq: int) -> Changes:
        removed = [r[0] for r in self._conn.execute("SELECT id FROM removed WHERE seq > ?", (seq,))]
        rows = self._conn.execute("SELECT id, vector FROM files WHERE seq > ?", (seq,)).fetchall()
        ids, vectors = _stack(rows) if rows else (np.empty(0, np.int64), np.empty((0, 0), np.float32))
        return Changes(removed, ids, vectors)

    def stats(self) -> CatalogStats:
        roots = [decode_path(r[0]) for r in self._conn.execute("SELECT path FROM roots ORDER BY path")]
        last = self._conn.execute("SELECT max(indexed_at) FROM roots").fetchone()[0]
        failures = self._conn.execute("SELECT count(*) FROM failures").fetchone()[0]
        return CatalogStats(self.count(), roots, last, failures)

    # writes (callers hold the writer lock) --------------------------------------------------------
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

    def move_files(self, moves: Sequence[Move]) -> None:
        # The vector and its label stay: only the row's path changes, so the index needs no update.
        self._conn.executemany(
            "UPDATE files SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
            [(encode_path(m.new_path), m.size, m.mtime_ns, m.id) for m in moves],
        )

    def touch_files(self, updates: Sequence[tuple[int, int, int]]) -> None:
        """(id, size, mtime_ns) for files whose content is unchanged though their stat changed."""
        self._conn.executemany("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?",
                               [(size, mtime, file_id) for file_id, size, mtime in updates])

    def remove_ids(self, ids: Sequence[int], seq: int) -> None:
        rows = [(int(i),) for i in ids]
        self._conn.executemany("DELETE FROM files WHERE id = ?", rows)
        self._conn.executemany("INSERT OR REPLACE INTO removed (id, seq) VALUES (?, ?)", [(i, seq) for (i,) in rows])

    def remove_under(self, paths: Sequence[str], seq: int) -> int:
        """Forget files and folders; returns how many files were removed."""
        ids: list[int] = []
        for path in paths:
            raw, prefix = encode_path(path), _prefix(path)
            ids += [r[0] for r in self._conn.execute(
                "SELECT id FROM files WHERE path = ? OR substr(path, 1, ?) = ?", (raw, len(prefix), prefix))]
            self._conn.execute("DELETE FROM failures WHERE path = ? OR substr(path, 1, ?) = ?",
                               (raw, len(prefix), prefix))
            self._conn.execute("DELETE FROM roots WHERE path = ? OR substr(path, 1, ?) = ?",
                               (raw, len(prefix), prefix))
        self.remove_ids(ids, seq)
        return len(ids)

    def record_failures(self, failures: Sequence[tuple[str, int, int, str]]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO failures (path, size, mtime_ns, reason) VALUES (?, ?, ?, ?)",
            [(encode_path(p), size, mtime, reason) for p, size, mtime, reason in failures],
        )

    def forget_failures(self, paths: Sequence[str]) -> None:
        self._conn.executemany("DELETE FROM failures WHERE path = ?", [(encode_path(p),) for p in paths])

    def record_roots(self, roots: Sequence[str]) -> None:
        stamp = now_iso()
        self._conn.executemany("INSERT OR REPLACE INTO roots (path, indexed_at) VALUES (?, ?)",
                               [(encode_path(r), stamp) for r in roots])

    def prune_tombstones(self, up_to_seq: int) -> None:
        self._conn.execute("DELETE FROM removed WHERE seq <= ?", (up_to_seq,))


def _stack(rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    return ids, vectors


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
