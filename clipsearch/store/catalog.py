"""The SQLite catalogue: files, their vectors, the model identity and the schema version.

It is the source of truth; everything else in a database folder derives from it. The Catalog owns the one
connection (clipsearch.store.connection) and its transactions, and hands out the repositories that read and
write its tables through it: `files` and `regions` (tables of vectors, clipsearch.store.vectors), `roots`,
`failures`, `tags`, `settings`, `staging` (a model switch in progress) and `in_flight` (files being decoded).
A repository that must change a sibling's table is given that sibling when it is made. Every statement takes
its data as `?` parameters.

Whatever SQLite reports (a damaged file, a read-only folder, a full disk) leaves this package as a
CatalogError that names the catalogue file, from any method, not only when it is opened
(clipsearch.store.sqlite_guard translates them).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from clipsearch.errors import CatalogError
from clipsearch.filesystem import create_private
from clipsearch.store.connection import Connection, connect
from clipsearch.store.crawl_memory import FailuresRepository, RootsRepository
from clipsearch.store.files import FilesRepository
from clipsearch.store.folder import create_database_folder
from clipsearch.store.hash_reader import HashReader
from clipsearch.store.regions import RegionsRepository
from clipsearch.store.rows import CatalogStats
from clipsearch.store.schema import migrate
from clipsearch.store.settings import SettingsRepository
from clipsearch.store.sqlite_guard import catalog_error, guarded
from clipsearch.store.staging import InFlightRepository, StagingRepository
from clipsearch.store.tags import TagsRepository


class Catalog:
    """The catalogue file: its connection, transactions and change numbers, and a repository per concern."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if not path.exists() and not create:
            raise CatalogError(f"no catalogue at {path}: run `clipsearch index FOLDER` first (or pass --db)")
        try:
            if create:
                create_database_folder(path.parent)
                with contextlib.suppress(FileExistsError):
                    os.close(create_private(path))  # SQLite gives its -wal and -shm files the same mode
            conn = connect(path, create=create)
            self._db = Connection(conn, path)
            conn.execute("PRAGMA busy_timeout = 30000")
            migrate(self._db, create=create)
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
        self._make_repositories(self._db)

    def _make_repositories(self, db: Connection) -> None:
        self.settings = SettingsRepository(db)
        self.roots = RootsRepository(db)
        self.failures = FailuresRepository(db)
        self.tags = TagsRepository(db)
        self.regions = RegionsRepository(db, self.settings)
        self.files = FilesRepository(db, self.settings, regions=self.regions, tags=self.tags, failures=self.failures)
        self.staging = StagingRepository(db, self.settings, files=self.files, tags=self.tags, failures=self.failures)
        self.in_flight = InFlightRepository(db)

    def _close_quietly(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.conn.close()

    def _check_writable(self) -> None:
        """Fail now if the catalogue cannot be written, rather than at the first commit after a long crawl."""
        # SQLite quietly opens a file it may not write read-only, and BEGIN IMMEDIATE still passes in WAL
        # mode; rewriting user_version to itself, then rolling back, is the cheapest write that tells.
        conn = self._db.conn
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version = {version}")
        finally:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """Turn SQLite errors inside the block into a CatalogError naming this catalogue."""
        return self._db.errors()

    def close(self) -> None:
        self._db.close()

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """`with catalog.transaction():` commits on success and rolls back on error. The outermost one takes the
        write lock (BEGIN IMMEDIATE); one opened inside it is a savepoint that rolls back only its own part."""
        return self._db.transaction()

    def hash_reader(self, *, staged: bool = False) -> HashReader:
        """Finds files (or, while switching models, staged files) by content hash from worker threads."""
        return HashReader(self.path, staged=staged)

    # changes -------------------------------------------------------------------------------------
    @guarded
    def current_seq(self) -> int:
        """The number of the latest change to any vector (files' or regions'); it only ever grows."""
        return self.settings.get_int("seq")

    @guarded
    def next_seq(self) -> int:
        """Claim the next change number; call inside the transaction that makes the change."""
        seq = self.current_seq() + 1
        self.settings.set("seq", str(seq))
        return seq

    @guarded
    def stats(self) -> CatalogStats:
        roots = [root.path for root in self.roots.all()]
        last = self.settings.get("last_indexed") or self.roots.last_indexed()
        return CatalogStats(self.files.count(), roots, last, self.failures.count())
