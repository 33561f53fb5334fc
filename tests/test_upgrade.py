"""A database written by clipsearch 0.1 opens, answers, and indexes with this version, migrated in place."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import TinyModel, model_args, run_cli, shows

from clipsearch.store.schema import MIGRATION_SET, MIGRATIONS, SCHEMA_VERSION

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "db-0.1"
OLD_LIBRARY = b"/tmp/cs01fixture/library"


def vectors(db: Path) -> dict[bytes, bytes]:
    with sqlite3.connect(db / "catalog.db") as connection:
        return dict(connection.execute("SELECT hash, vector FROM files"))


@pytest.fixture()
def old_db(tmp_path: Path, photo_library) -> Path:
    """The 0.1 database, its photo paths moved onto this session's photo library."""
    root, _ = photo_library
    db = tmp_path / "db"
    shutil.copytree(FIXTURE, db, ignore=shutil.ignore_patterns("README.md"))
    new_root = bytes(root)
    connection = sqlite3.connect(db / "catalog.db")
    with connection:
        for table, key in (("files", "id"), ("roots", "path"), ("failures", "path")):
            rows = connection.execute(f"SELECT {key}, path FROM {table}").fetchall()
            for row_key, path in rows:
                assert path.startswith(OLD_LIBRARY)
                connection.execute(f"UPDATE {table} SET path = ? WHERE {key} = ?",
                                   (new_root + path[len(OLD_LIBRARY):], row_key))
    connection.close()
    return db


def test_a_0_1_database_answers_queries_and_indexes_after_a_migration_in_place(
        old_db: Path, photo_library, test_model: TinyModel) -> None:
    root, photos = photo_library
    before = vectors(old_db)
    with sqlite3.connect(old_db / "catalog.db") as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1

    status = json.loads(run_cli("status", "--json", "--db", old_db).stdout)
    assert status["images"] == 60 and status["model"].startswith("clipsearch-test-tiny")
    # The model's files moved since 0.1 wrote it: named again, they are recognised by content.
    found = run_cli("query", "a red circle", "--db", old_db, "-f", "json", *model_args(test_model))
    assert found.exit_code == 0, found.stderr
    best = json.loads(found.stdout)[0]["path"]
    assert shows(next(p for p in photos if str(p.path) == best), "red", "circle")
    similar = run_cli("similar", best, "--db", old_db, "-f", "json", "-n", "3")
    assert similar.exit_code == 0, similar.stderr

    indexed = run_cli("index", root, "--db", old_db)
    assert indexed.exit_code == 0, indexed.stderr
    assert "removed 0" in indexed.stderr and "skipped 0" in indexed.stderr
    # 0.1 read no cameras: the next index reads them from the headers, and embeds nothing again for that.
    assert "read the dates and cameras of" in indexed.stderr
    with sqlite3.connect(old_db / "catalog.db") as connection:
        assert connection.execute("SELECT count(*) FROM files WHERE facts < 1").fetchone()[0] == 0
        cameras = {row[0] for row in connection.execute("SELECT camera_model FROM files")}
    assert {"NIKON D750", "Canon EOS 80D", "iPhone 12"} <= cameras
    nikon = run_cli("query", "a shape", "--camera", "nikon", "--db", old_db, "-f", "json", "-n", "60")
    assert nikon.exit_code == 0 and all("/2019/summer/" in r["path"] for r in json.loads(nikon.stdout))
    assert json.loads(run_cli("status", "--json", "--db", old_db).stdout)["images"] == 60
    after = vectors(old_db)
    # Files whose content the test library reproduces byte for byte keep 0.1's vectors exactly.
    assert {h: after[h] for h in before if h in after} == {h: before[h] for h in before if h in after}
    assert all(np.frombuffer(v, np.float32).shape == (128,) for v in after.values())

    with sqlite3.connect(old_db / "catalog.db") as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        applied = [r[0] for r in connection.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY id", (MIGRATION_SET,))]
    assert applied == [m.__name__ for m in MIGRATIONS]


def test_a_catalogue_from_a_newer_clipsearch_is_refused_with_one_line(old_db: Path) -> None:
    with sqlite3.connect(old_db / "catalog.db") as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    result = run_cli("status", "--db", old_db)
    assert result.exit_code == 2
    assert result.stderr.startswith("clipsearch: error: ") and "newer clipsearch" in result.stderr
    assert len(result.stderr.splitlines()) == 1
