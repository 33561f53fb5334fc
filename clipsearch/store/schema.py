"""The catalogue's schema: numbered sqlite-utils migrations that take any earlier catalogue to today's.

Each migration runs once, in order, recorded by sqlite-utils in `_sqlite_migrations`. PRAGMA user_version
mirrors how many have run, so that opening an up-to-date catalogue (every query does) needs neither
sqlite-utils nor a look at that table, and a catalogue from a newer clipsearch is recognised at once.
Catalogues written by clipsearch 0.1 have user_version 1 and no `_sqlite_migrations` table: their first
migration is recorded as done, then the rest run.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from clipsearch.errors import CatalogError
from clipsearch.store.connection import Connection

if TYPE_CHECKING:
    import sqlite_utils

MIGRATION_SET = "clipsearch"
# With 4 KB pages a row and its 2 KB vector fill a page each; 16 KB pages pack several.
CATALOG_PAGE_SIZE = 16384


def m001_create_tables(db: sqlite_utils.Database) -> None:
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


def m002_root_options_and_failure_kinds(db: sqlite_utils.Database) -> None:
    """Each root remembers the crawl options it was indexed with (JSON); each remembered failure says whether
    the file is bad, or was only over a limit the user chose (and may raise)."""
    db["roots"].add_column("options", str)
    db["failures"].add_column("kind", str)


def m003_model_switch_and_files_in_flight(db: sqlite_utils.Database) -> None:
    """`staged`: files embedded with the model a database is switching to, until every file has been; `in_flight`:
    files handed to the decoders and not yet committed, so a file that kills the process is known afterwards."""
    db["staged"].create(
        {"path": bytes, "size": int, "mtime_ns": int, "hash": str, "width": int, "height": int, "taken_at": str,
         "vector": bytes},
        pk="path", not_null={"size", "mtime_ns", "hash", "vector"},
    )
    db["staged"].create_index(["hash"])
    db["in_flight"].create({"path": bytes, "size": int, "mtime_ns": int, "attempts": int}, pk="path")


def m004_cameras_dates_and_tags(db: sqlite_utils.Database) -> None:
    """The camera (EXIF Make and Model) of each file, and how complete its facts are (`facts`: 0 for rows from
    before cameras were read, whose EXIF the next `index` reads again, without re-embedding); an index on capture
    times for date filters; and each file's zero-shot tags."""
    for table in ("files", "staged"):
        db[table].add_column("camera_make", str)
        db[table].add_column("camera_model", str)
    db["files"].add_column("facts", int, not_null_default=0)
    db["files"].create_index(["taken_at"])
    db["tags"].create({"file_id": int, "label": str, "probability": float}, pk=("file_id", "label"),
                      not_null={"probability"})
    db["tags"].create_index(["label", "probability"])
    # The tagging vocabulary's label vectors, for the model they were computed with (settings: tag_vocabulary).
    db["tag_labels"].create({"position": int, "label": str, "grouping": int, "vector": bytes}, pk="position",
                            not_null={"label", "grouping", "vector"})


def m005_regions(db: sqlite_utils.Database) -> None:
    """Region vectors of `index --regions` (crops of a photo, with their boxes) and their tombstones, for the
    regions' own vector index."""
    db["regions"].create({"id": int, "file_id": int, "x": int, "y": int, "w": int, "h": int, "seq": int,
                          "vector": bytes}, pk="id", not_null={"file_id", "x", "y", "w", "h", "seq", "vector"})
    db["regions"].create_index(["file_id"])
    db["regions"].create_index(["seq"])
    db["removed_regions"].create({"id": int, "seq": int}, pk="id", not_null={"seq"})
    db["removed_regions"].create_index(["seq"])


# Append only, and never edit one that has shipped: a catalogue that ran it will not run it again.
MIGRATIONS = (m001_create_tables, m002_root_options_and_failure_kinds, m003_model_switch_and_files_in_flight,
              m004_cameras_dates_and_tags, m005_regions)
FACTS_VERSION = 1  # files.facts of a row whose facts are all read (dimensions, capture time, camera)
SCHEMA_VERSION = len(MIGRATIONS)


def _migrations() -> sqlite_utils.Migrations:
    from sqlite_utils import Migrations

    migrations = Migrations(MIGRATION_SET)
    for function in MIGRATIONS:
        migrations()(function)
    return migrations


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(connection: Connection, create: bool) -> None:
    """Bring the catalogue to SCHEMA_VERSION, or say why it cannot be used."""
    conn, path = connection.conn, connection.path
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise CatalogError(
            f"{path} was written by a newer clipsearch (schema {version}, this one knows {SCHEMA_VERSION}): "
            "upgrade clipsearch, or use another --db"
        )
    if version == SCHEMA_VERSION:
        return
    if version == 0:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise CatalogError(f"{path} is an SQLite file but not a clipsearch catalogue")
        if not create:  # e.g. emptied by `: > catalog.db`, or a run that died before creating the tables
            raise CatalogError(f"{path} is empty: run `clipsearch index FOLDER` to fill it")
        # Only possible before the first table exists, and outside a transaction, as is switching to WAL.
        conn.execute(f"PRAGMA page_size = {CATALOG_PAGE_SIZE}")
    import sqlite_utils  # slow to import for a query: only when there is a schema to create or migrate

    db = sqlite_utils.Database(conn, execute_plugins=False)
    db.enable_wal()
    # One IMMEDIATE transaction around it all: two processes that open an old catalogue at once migrate it once.
    # sqlite-utils runs each migration in a savepoint (Database.atomic) inside it.
    with connection.transaction():
        version = schema_version(conn)
        if version >= SCHEMA_VERSION:
            return
        migrations = _migrations()
        if version and not migrations.applied(db):
            _record_as_applied(db, migrations, version)
        migrations.apply(db)
        # PRAGMA takes no parameters; SCHEMA_VERSION is our own int, never data from the file or the user.
        conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")


def _record_as_applied(db: sqlite_utils.Database, migrations: sqlite_utils.Migrations, version: int) -> None:
    """A catalogue from before migrations were recorded by name: its first `version` ones ran."""
    migrations.ensure_migrations_table(db)
    done = [function.__name__ for function in MIGRATIONS[:version]]
    db[migrations.migrations_table].insert_all(
        {"migration_set": MIGRATION_SET, "name": name, "applied_at": "before clipsearch recorded migrations"}
        for name in done
    )
