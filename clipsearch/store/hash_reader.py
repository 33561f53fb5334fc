"""Rows by content hash, from worker threads: each thread reads through a read-only connection of its own.

Indexing hashes files on many threads while the main thread writes; a worker must not wait for the writer's
connection (or see its uncommitted rows), so it asks the catalogue file itself. Its failures are CatalogErrors
naming the file, like every other read's.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from clipsearch.store.sqlite_guard import translated

_QUERIES = {False: "SELECT id FROM files WHERE hash = ?", True: "SELECT rowid FROM staged WHERE hash = ?"}


class HashReader:
    """The ids of the files (or, while switching models, the rowids of the staged files) with a content hash.

    Safe to call from any thread; `close()` once the threads are done.
    """

    def __init__(self, path: Path, *, staged: bool = False) -> None:
        self.path = path
        self._query = _QUERIES[staged]
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def ids_with_hash(self, digest: str) -> list[int]:
        with translated(self.path):
            return [row[0] for row in self._connection().execute(self._query, (digest,))]

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path.as_uri() + "?mode=ro", uri=True, check_same_thread=False)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
