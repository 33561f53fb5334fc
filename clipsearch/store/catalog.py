"""The SQLite catalogue: files, their vectors, the model identity and the schema version.

It is the source of truth. Every change to a vector carries a sequence number (`seq`),
and removals leave a tombstone, so the derived HNSW file can be caught up from any
earlier state instead of being rebuilt. Every statement takes its data as `?` parameters.

Whatever SQLite reports (a damaged file, a read-only folder, a full disk) leaves this module as
a CatalogError that names the catalogue file, from any method, not only when it is opened
(clipsearch.store.sqlite_guard translates them).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from clipsearch.errors import CatalogError
from clipsearch.store.rows import (
    AT_OR_UNDER,
    UNDER,
    CatalogStats,
    Changes,
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
from clipsearch.store.schema import migrate
from clipsearch.store.sqlite_guard import Transaction, catalog_error, guarded, translated


class Catalog:
    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if not path.exists() and not create:
            raise CatalogError(f"no catalogue at {path}: run `clipsearch index FOLDER` first (or pass --db)")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 30000")
            migrate(self._conn, path, create=create)
            if create:
                self._check_writable()
        except CatalogError:
            self._close_quietly()
            raise
        except sqlite3.Error as error:
            self._close_quietly()
            raise catalog_error(path, error) from error
        except OSError as error:
            self._close_quietly()
            raise CatalogError(f"cannot open the catalogue {path}: {error.strerror or error}") from error

    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _check_writable(self) -> None:
        """Fail now if the catalogue cannot be written, rather than at the first commit after a long crawl."""
        # SQLite quietly opens a file it may not write read-only, and BEGIN IMMEDIATE still passes in WAL
        # mode; rewriting user_version to itself, then rolling back, is the cheapest write that tells.
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(f"PRAGMA user_version = {version}")
        finally:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """Turn SQLite errors inside the block into a CatalogError naming this catalogue."""
        return translated(self.path)

    @guarded
    def close(self) -> None:
        self._conn.close()

    def transaction(self) -> Transaction:
        """`with catalog.transaction():` commits on success and rolls back on error."""
        return Transaction(self._conn, self.path)

    # settings -----------------------------------------------------------------------------------
    @guarded
    def get_setting(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @guarded
    def set_setting(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    @guarded
    def get_json(self, key: str) -> dict | None:
        value = self.get_setting(key)
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError as error:
            raise CatalogError(f"the catalogue {self.path} is damaged (setting {key!r} is not JSON): restore it "
                               "from a backup, or move it away and run `clipsearch index` again") from error

    @guarded
    def set_json(self, key: str, value: dict) -> None:
        self.set_setting(key, json.dumps(value, sort_keys=True))

    # reads --------------------------------------------------------------------------------------
    @guarded
    def current_seq(self) -> int:
        """The number of the latest change to any vector; it only ever grows."""
        return int(self.get_setting("seq") or 0)

    @guarded
    def next_seq(self) -> int:
        """Claim the next change number; call inside the transaction that makes the change."""
        seq = self.current_seq() + 1
        self.set_setting("seq", str(seq))
        return seq

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
    def known_failures(self, roots: Sequence[str]) -> dict[str, tuple[int, int]]:
        failures: dict[str, tuple[int, int]] = {}
        for root in roots:
            rows = self._conn.execute(f"SELECT path, size, mtime_ns FROM failures WHERE {AT_OR_UNDER}",
                                      at_or_under(root))
            failures.update((decode_path(path), (size, mtime)) for path, size, mtime in rows)
        return failures

    @guarded
    def records(self, ids: Sequence[int]) -> dict[int, FileRecord]:
        found: dict[int, FileRecord] = {}
        for part, marks in chunked(ids):
            for row in self._conn.execute(
                f"SELECT id, path, width, height, taken_at FROM files WHERE id IN ({marks})", part
            ):
                found[row[0]] = FileRecord(row[0], decode_path(row[1]), *row[2:])
        return found

    @guarded
    def find(self, path: str) -> tuple[FileRecord, np.ndarray] | None:
        row = self._conn.execute(
            "SELECT id, path, width, height, taken_at, vector FROM files WHERE path = ?", (encode_path(path),)
        ).fetchone()
        if row is None:
            return None
        return FileRecord(row[0], decode_path(row[1]), *row[2:5]), _vector(row[5], self.path)

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
            yield _stack(rows, self.path)

    @guarded
    def vectors(self, ids: Sequence[int] | None = None, chunk: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in chunks: all files, or the given ids."""
        if ids is None:
            cursor = self._conn.execute("SELECT id, vector FROM files ORDER BY id")
            while rows := cursor.fetchmany(chunk):
                yield _stack(rows, self.path)
            return
        for part, marks in chunked(ids):
            rows = self._conn.execute(f"SELECT id, vector FROM files WHERE id IN ({marks})", part).fetchall()
            if rows:
                yield _stack(rows, self.path)

    @guarded
    def changes_since(self, seq: int) -> Changes:
        removed = [r[0] for r in self._conn.execute("SELECT id FROM removed WHERE seq > ?", (seq,))]
        rows = self._conn.execute("SELECT id, vector FROM files WHERE seq > ?", (seq,)).fetchall()
        ids, vectors = _stack(rows, self.path) if rows else (np.empty(0, np.int64), np.empty((0, 0), np.float32))
        return Changes(removed, ids, vectors, removals_complete=seq >= self.pruned_seq())

    @guarded
    def ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self._conn.execute("SELECT id FROM files")), dtype=np.int64)

    @guarded
    def stats(self) -> CatalogStats:
        roots = [decode_path(r[0]) for r in self._conn.execute("SELECT path FROM roots ORDER BY path")]
        last = self._conn.execute("SELECT max(indexed_at) FROM roots").fetchone()[0]
        failures = self._conn.execute("SELECT count(*) FROM failures").fetchone()[0]
        return CatalogStats(self.count(), roots, last, failures)

    # writes (callers hold the writer lock) --------------------------------------------------------
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
    def remove_under(self, paths: Sequence[str], seq: int) -> int:
        """Forget files and folders; returns how many files were removed."""
        ids: list[int] = []
        for path in paths:
            where = at_or_under(path)
            ids += [r[0] for r in self._conn.execute(f"SELECT id FROM files WHERE {AT_OR_UNDER}", where)]
            self._conn.execute(f"DELETE FROM failures WHERE {AT_OR_UNDER}", where)
            self._conn.execute(f"DELETE FROM roots WHERE {AT_OR_UNDER}", where)
        self.remove_ids(ids, seq)
        return len(ids)

    @guarded
    def record_failures(self, failures: Sequence[tuple[str, int, int, str]]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO failures (path, size, mtime_ns, reason) VALUES (?, ?, ?, ?)",
            [(encode_path(p), size, mtime, reason) for p, size, mtime, reason in failures],
        )

    @guarded
    def forget_failures(self, paths: Sequence[str]) -> None:
        self._conn.executemany("DELETE FROM failures WHERE path = ?", [(encode_path(p),) for p in paths])

    @guarded
    def record_roots(self, roots: Sequence[str]) -> None:
        stamp = now_iso()
        self._conn.executemany("INSERT OR REPLACE INTO roots (path, indexed_at) VALUES (?, ?)",
                               [(encode_path(r), stamp) for r in roots])

    @guarded
    def prune_tombstones(self, up_to_seq: int) -> None:
        """Drop the tombstones the saved index no longer needs, and remember how far: a reader holding an older
        index (`clipsearch serve`) then knows its removals must be found another way."""
        with self.transaction():
            self._conn.execute("DELETE FROM removed WHERE seq <= ?", (up_to_seq,))
            if up_to_seq > self.pruned_seq():
                self.set_setting("pruned_seq", str(up_to_seq))

    def pruned_seq(self) -> int:
        return int(self.get_setting("pruned_seq") or 0)


def _damaged_vectors(path: Path) -> CatalogError:
    return CatalogError(f"the catalogue {path} holds damaged vectors: run `clipsearch index --reindex` on your "
                        "folders")


def _vector(blob: bytes, path: Path) -> np.ndarray:
    # SQLite cannot tell a vector blob that lost bytes from a good one; numpy would fail with a riddle.
    if not blob or len(blob) % 4:
        raise _damaged_vectors(path)
    return np.frombuffer(blob, dtype=np.float32)


def _stack(rows: list[tuple[int, bytes]], path: Path) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    sizes = {len(r[1]) for r in rows}
    if len(sizes) > 1:
        raise _damaged_vectors(path)
    _vector(rows[0][1], path)
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    return ids, vectors
