"""The SQLite catalogue: files, their vectors, the model identity and the schema version.

It is the source of truth; everything else in a database folder derives from it. The Catalog is
one connection and its settings here, with the tables' reads and writes in the classes it joins:
FilesTable (files and their vectors), CrawlMemory (roots and failures), Staging (a model switch
in progress, files in flight), TagsTable (zero-shot tags) and RegionsTable (region vectors). Every
statement takes its data as `?` parameters.

Whatever SQLite reports (a damaged file, a read-only folder, a full disk) leaves this module as
a CatalogError that names the catalogue file, from any method, not only when it is opened
(clipsearch.store.sqlite_guard translates them).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

import numpy as np

from clipsearch.errors import CatalogError
from clipsearch.files import create_private
from clipsearch.store.crawl_memory import CrawlMemory
from clipsearch.store.files_table import FilesTable, stack_vectors
from clipsearch.store.folder import create_database_folder
from clipsearch.store.regions_table import RegionsTable
from clipsearch.store.rows import CatalogStats, Changes
from clipsearch.store.schema import migrate
from clipsearch.store.sqlite_guard import Transaction, catalog_error, guarded, translated
from clipsearch.store.staging import Staging
from clipsearch.store.tags_table import TagsTable


class Catalog(FilesTable, CrawlMemory, Staging, TagsTable, RegionsTable):
    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if not path.exists() and not create:
            raise CatalogError(f"no catalogue at {path}: run `clipsearch index FOLDER` first (or pass --db)")
        try:
            if create:
                create_database_folder(path.parent)
                with contextlib.suppress(FileExistsError):
                    os.close(create_private(path))  # SQLite gives its -wal and -shm files the same mode
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

    # changes -------------------------------------------------------------------------------------
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
    def changes_since(self, seq: int) -> Changes:
        removed = [r[0] for r in self._conn.execute("SELECT id FROM removed WHERE seq > ?", (seq,))]
        rows = self._conn.execute("SELECT id, vector FROM files WHERE seq > ?", (seq,)).fetchall()
        if rows:
            ids, vectors = stack_vectors(rows, self.path)
        else:
            ids, vectors = np.empty(0, np.int64), np.empty((0, 0), np.float32)
        return Changes(removed, ids, vectors, removals_complete=seq >= self.pruned_seq())

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

    @guarded
    def stats(self) -> CatalogStats:
        roots = [root.path for root in self.roots()]
        last = self.get_setting("last_indexed") or self._conn.execute("SELECT max(indexed_at) FROM roots").fetchone()[0]
        return CatalogStats(self.count(), roots, last, self.failure_count())
