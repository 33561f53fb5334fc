"""The one connection to the catalogue file, its transactions that nest, and the base of the repositories.

Every repository of a Catalog reads and writes through the same Connection, so a transaction opened
anywhere covers the work of all of them. The outermost `transaction()` is BEGIN IMMEDIATE: it takes
SQLite's write lock at once (one writer; a second waits for busy_timeout, then fails with a clear
error). An inner one is a SAVEPOINT: on error it rolls back its own part only and the outer goes on,
so a method can open its own transaction whether or not its caller holds one.

sqlite-utils' Database.atomic() nests savepoints too, but begins with a deferred BEGIN (a writer
that finds the lock taken at its first write, after its reads) and knows nothing of our errors or
threads; this small context manager opens BEGIN IMMEDIATE, names the catalogue in every failure,
and keeps a transaction to the thread that opened it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from clipsearch.store.sqlite_guard import translated


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """Open the catalogue file in autocommit mode; read-only when this process may not write it or its folder.

    A reader must not need write access: a database on a read-only mount, or one shared read-only with other
    users, is searched as well as one's own. `mode=ro` never writes the file; SQLite in WAL mode still creates
    the `-shm` and `-wal` files beside it, which a folder no one may write to forbids, so there the file is
    opened `immutable=1`: SQLite then takes no locks and reads no WAL. That is safe because no writer can be
    running in a folder that no one may write to. The one who could (root, or the owner after a chmod) must
    not write to it while read-only readers are open; and a WAL left with unmerged changes (a writer that died
    before the folder was made read-only) is read through its `-shm`, without immutable=1, so nothing in it is
    missed.
    """
    if create or (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        return sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    uri = path.absolute().as_uri() + "?mode=ro"
    wal = path.with_name(path.name + "-wal")
    if not os.access(path.parent, os.W_OK) and not (wal.exists() and wal.stat().st_size):
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)


class Connection:
    """The catalogue's sqlite3 connection (autocommit mode: isolation_level=None) and its file's path."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # Held by the thread inside a transaction: nesting is for one thread's calls; another thread's
        # transaction waits for the outermost to end rather than becoming a savepoint of work it cannot see.
        self._lock = threading.RLock()
        self._depth = 0

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """Turn SQLite errors inside the block into a CatalogError naming the catalogue."""
        return translated(self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """`with connection.transaction():` commits (or releases its savepoint) on success, rolls back its own
        part on error; the outermost level's COMMIT makes the whole visible to other connections."""
        with self._lock:
            level = self._depth
            begin, end = ("BEGIN IMMEDIATE", "COMMIT") if level == 0 else (f"SAVEPOINT level{level}",
                                                                            f"RELEASE level{level}")
            with translated(self.path):
                self.conn.execute(begin)
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._undo(level)
                raise
            else:
                try:
                    with translated(self.path):
                        self.conn.execute(end)
                except BaseException:
                    self._undo(level)
                    raise
            finally:
                self._depth = level

    def _undo(self, level: int) -> None:
        # After SQLITE_FULL or an I/O error SQLite may already have rolled back the whole transaction, savepoints
        # included, and a failing ROLLBACK must not replace the error that says what really went wrong.
        if not self.conn.in_transaction:
            return
        statements = ("ROLLBACK",) if level == 0 else (f"ROLLBACK TO level{level}", f"RELEASE level{level}")
        with contextlib.suppress(sqlite3.Error):
            for statement in statements:
                self.conn.execute(statement)

    def close(self) -> None:
        with translated(self.path):
            self.conn.close()


class Repository:
    """The base of the catalogue's repositories: the shared connection, and `errors()` for `@guarded`."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._db.conn

    @property
    def path(self) -> Path:
        return self._db.path

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return self._db.errors()

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction()
