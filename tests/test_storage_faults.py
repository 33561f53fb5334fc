"""Storage faults, end to end: damaged, foreign, read-only and full storage under a real database.

The HNSW file is a cache and must heal itself from the catalogue. The catalogue is the source of
truth: when it is damaged, refused or cannot be written, every command says so in one line that
names the file, exits 2, and leaves what is on disk as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CliResult, TinyModel, model_args, run_cli, write_photos

pytestmark = pytest.mark.slow  # the quick tier (-m "not slow") leaves these to CI

REPO = Path(__file__).resolve().parent.parent
PHOTOS = 4


def settle(db: Path) -> None:
    """Fold the write-ahead log into catalog.db, so that damaging that one file damages the catalogue."""
    with contextlib.closing(sqlite3.connect(db / "catalog.db")) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for leftover in ("catalog.db-wal", "catalog.db-shm"):
        (db / leftover).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, test_model: TinyModel) -> tuple[Path, Path]:
    """(photos, db): a few photos indexed once. Read-only: tests copy the database with `fresh_db`."""
    base = tmp_path_factory.mktemp("faults")
    photos = base / "photos"
    write_photos(photos, PHOTOS, seed=1)
    db = base / "db"
    result = run_cli("index", photos, "--db", db, *model_args(test_model))
    assert result.exit_code == 0, result.stderr
    settle(db)
    return photos, db


def fresh_db(library: tuple[Path, Path], tmp_path: Path) -> Path:
    db = tmp_path / "db"
    shutil.copytree(library[1], db)
    return db


def results(db: Path) -> list[tuple[str, float]]:
    result = run_cli("query", "anything", "-n", "50", "-f", "json", "--db", db)
    assert result.exit_code == 0, result.stderr
    return [(r["path"], r["score"]) for r in json.loads(result.stdout)]


def index_line(db: Path) -> str:
    result = run_cli("status", "--db", db)
    assert result.exit_code == 0, result.stderr
    return next(line for line in result.stdout.splitlines() if line.startswith("vector index:"))


def assert_one_clean_error(result: CliResult, *mentions: object) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("loading ")]  # progress, not error
    assert len(lines) == 1 and lines[0].startswith("clipsearch: error: "), result.stderr
    for mention in mentions:
        assert str(mention) in lines[0], lines[0]
    return lines[0]


# --- the HNSW file heals itself ---------------------------------------------------------------------------

def damage_index(db: Path, how: str) -> None:
    index = db / "vectors.hnsw"
    data = index.read_bytes()
    if how == "missing":
        index.unlink()
    elif how == "truncated":
        index.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        index.write_bytes(random.Random(0).randbytes(len(data)))
    elif how == "empty":
        index.write_bytes(b"")


@pytest.mark.parametrize("how", ["missing", "truncated", "garbage", "empty"])
def test_a_damaged_hnsw_file_is_rebuilt_from_the_catalogue(library: tuple[Path, Path], tmp_path: Path,
                                                           how: str) -> None:
    photos, _ = library
    db = fresh_db(library, tmp_path)
    before = results(db)
    size = (db / "vectors.hnsw").stat().st_size
    damage_index(db, how)
    assert "rebuilt from the catalogue" in index_line(db)
    assert results(db) == before
    healed = run_cli("index", photos, "--db", db)  # nothing changed, but the index is written back
    assert healed.exit_code == 0 and f"unchanged {PHOTOS}" in healed.stderr, healed.stderr
    assert index_line(db).startswith("vector index: current")
    assert (db / "vectors.hnsw").stat().st_size == size
    assert results(db) == before


LIES = {
    "another catalogue": lambda state: {**state, "catalog_id": "0" * 32},
    "another dimension": lambda state: {**state, "dim": state["dim"] // 2},
    "a sequence from the future": lambda state: {**state, "seq": state["seq"] + 1000},
    "strings for numbers": lambda state: {**state, "seq": str(state["seq"]), "size": "big"},
    "missing fields": lambda state: {"seq": state["seq"]},
    "not JSON at all": lambda state: "{ this is not json",
}


@pytest.mark.parametrize("lie", LIES)
def test_a_lying_vectors_json_is_not_trusted(library: tuple[Path, Path], tmp_path: Path, lie: str) -> None:
    db = fresh_db(library, tmp_path)
    before = results(db)
    state_file = db / "vectors.json"
    told = LIES[lie](json.loads(state_file.read_text()))
    state_file.write_text(told if isinstance(told, str) else json.dumps(told))
    assert "current" not in index_line(db)
    assert results(db) == before


def test_an_index_file_older_than_its_state_claims_is_rebuilt(tmp_path: Path, test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 3, seed=2)
    assert run_cli("index", photos, "--db", db, *model_args(test_model)).exit_code == 0
    old_index, old_state = (db / "vectors.hnsw").read_bytes(), json.loads((db / "vectors.json").read_text())
    write_photos(photos / "later", 2, seed=3)
    assert run_cli("index", photos, "--db", db).exit_code == 0
    current_seq = json.loads((db / "vectors.json").read_text())["seq"]
    # The old file with its own size and fingerprint, but the newest sequence number: a consistent lie.
    (db / "vectors.hnsw").write_bytes(old_index)
    (db / "vectors.json").write_text(json.dumps({**old_state, "seq": current_seq}))
    assert len(results(db)) == 5


# --- a damaged or foreign catalogue is one clear error ----------------------------------------------------

def damage_catalogue(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "random bytes":
        path.write_bytes(random.Random(1).randbytes(len(data)))
    elif how == "cut in half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "pages overwritten":
        # Page 1 (header and schema) survives, so the file opens and the damage shows in the first read.
        page_size = int.from_bytes(data[16:18], "big")
        data[page_size:] = random.Random(2).randbytes(len(data) - page_size)
        path.write_bytes(bytes(data))
    elif how == "emptied":
        path.write_bytes(b"")


def command(name: str, photos: Path) -> list[str | Path]:
    photo = sorted(photos.iterdir())[0]
    return {
        "status": ["status"],
        "query": ["query", "anything"],
        "similar": ["similar", photo],
        "index": ["index", photos],
        "forget": ["forget", photo],
    }[name]


@pytest.mark.parametrize("name", ["status", "query", "similar", "index", "forget"])
@pytest.mark.parametrize("how", ["random bytes", "cut in half", "pages overwritten", "emptied"])
def test_a_damaged_catalogue_is_one_clear_error(library: tuple[Path, Path], tmp_path: Path, test_model: TinyModel,
                                                how: str, name: str) -> None:
    photos, _ = library
    db = fresh_db(library, tmp_path)
    catalogue = db / "catalog.db"
    damage_catalogue(catalogue, how)
    damaged = catalogue.read_bytes()
    if how == "emptied" and name == "index":
        # Nothing is left to protect, not even the model's name: indexing starts the catalogue over.
        result = run_cli(*command(name, photos), "--db", db, *model_args(test_model))
        assert result.exit_code == 0 and f"indexed {PHOTOS}," in result.stderr, result.stderr
        return
    line = assert_one_clean_error(run_cli(*command(name, photos), "--db", db), catalogue)
    assert ("is empty: run `clipsearch index" if how == "emptied" else "is damaged (") in line
    assert catalogue.read_bytes() == damaged  # refused, not "repaired" into something else


@pytest.mark.parametrize("name", ["status", "query", "similar", "index", "forget"])
def test_a_catalogue_from_a_newer_clipsearch_is_refused(library: tuple[Path, Path], tmp_path: Path,
                                                        name: str) -> None:
    photos, _ = library
    db = fresh_db(library, tmp_path)
    with contextlib.closing(sqlite3.connect(db / "catalog.db")) as connection:
        connection.execute("PRAGMA user_version = 99")
    settle(db)
    before = (db / "catalog.db").read_bytes()
    result = run_cli(*command(name, photos), "--db", db)
    assert_one_clean_error(result, db / "catalog.db", "written by a newer clipsearch")
    assert (db / "catalog.db").read_bytes() == before


def test_a_damaged_vector_is_one_clear_error_and_reindex_heals_it(library: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    photos, _ = library
    db = fresh_db(library, tmp_path)
    photo = sorted(photos.iterdir())[0]
    with contextlib.closing(sqlite3.connect(db / "catalog.db")) as connection, connection:
        # A blob that lost bytes is still a valid SQLite value: only its length gives it away.
        connection.execute("UPDATE files SET vector = substr(vector, 1, 7) WHERE path = ?", (os.fsencode(photo),))
    settle(db)
    assert_one_clean_error(run_cli("similar", photo, "--db", db), db / "catalog.db", "damaged vectors", "--reindex")
    healed = run_cli("index", "--reindex", photos, "--db", db)
    assert healed.exit_code == 0, healed.stderr
    assert run_cli("similar", photo, "--db", db).exit_code == 0


# --- storage that cannot be written ----------------------------------------------------------------------

@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    # Root writes through any permission bits; the immutable attribute stops root too.
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", path], capture_output=True).returncode:
        pytest.skip("running as root where chattr +i does not work: nothing can be made read-only for root")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", path], check=True)


def rows(db: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True)) as connection:
        return connection.execute("SELECT path, size, mtime_ns, hash, seq, vector FROM files ORDER BY id").fetchall()


def test_a_read_only_catalogue_refuses_writes_and_keeps_its_contents(library: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    photos, _ = library
    db = fresh_db(library, tmp_path)
    extra = tmp_path / "extra"
    write_photos(extra, 1, seed=4)
    before = rows(db)
    with read_only(db / "catalog.db"):
        refused = run_cli("index", extra, "--db", db)
        assert_one_clean_error(refused, db / "catalog.db", "cannot write")
        assert "loading" not in refused.stderr  # found out before the model is loaded and photos are embedded
        assert_one_clean_error(run_cli("forget", sorted(photos.iterdir())[0], "--db", db), db / "catalog.db",
                               "cannot write")
        assert len(results(db)) == PHOTOS  # reading still works
    assert rows(db) == before
    again = run_cli("index", extra, "--db", db)
    assert again.exit_code == 0 and "indexed 1," in again.stderr, again.stderr


def test_a_read_only_database_folder_fails_cleanly(library: tuple[Path, Path], tmp_path: Path) -> None:
    photos, _ = library
    db = fresh_db(library, tmp_path)
    extra = tmp_path / "extra"
    write_photos(extra, 1, seed=5)
    shutil.rmtree(db / "query-model")  # so that a query that loads the model tries to write its numpy copy
    images = len(rows(db))
    settle(db)  # no -wal or -shm file: the folder is all there is to write to
    listing = {path.name: path.read_bytes() for path in db.iterdir()}
    with read_only(db):
        assert_one_clean_error(run_cli("index", extra, "--db", db), db)
        assert_one_clean_error(run_cli("forget", sorted(photos.iterdir())[0], "--db", db), db)
        # Reading needs no write access: the catalogue opens read-only, immutable where no -shm can be made.
        status = run_cli("status", "--json", "--db", db)
        assert status.exit_code == 0, status.stderr
        assert json.loads(status.stdout)["images"] == images
        found = run_cli("query", "anything", "--db", db)
        assert found.exit_code == 0 and found.stdout.splitlines(), found.stderr
    assert {path.name: path.read_bytes() for path in db.iterdir()} == listing


def test_a_database_folder_inside_a_file_fails_cleanly(library: tuple[Path, Path], tmp_path: Path) -> None:
    photos, _ = library
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file where the database folder's parent should be\n")
    db = not_a_folder / "db"
    assert_one_clean_error(run_cli("index", photos, "--db", db), db)
    assert_one_clean_error(run_cli("forget", photos, "--db", db), db)
    assert not_a_folder.read_text().startswith("a file")


def test_a_database_folder_named_like_a_uri_works(library: tuple[Path, Path], tmp_path: Path,
                                                  test_model: TinyModel) -> None:
    photos, _ = library
    db = tmp_path / "what?#100%"
    result = run_cli("index", photos, "--db", db, *model_args(test_model))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [db.name]  # and no stray file beside it
    assert len(results(db)) == PHOTOS


# --- a full disk, for real --------------------------------------------------------------------------------

@contextlib.contextmanager
def small_disk(mountpoint: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at mountpoint: a disk that really fills up. Needs root (or CAP_SYS_ADMIN)."""
    mountpoint.mkdir()
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        pytest.skip("a full disk needs a small file system, and mounting one needs root")
    mounted = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mountpoint], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", mountpoint], capture_output=True).returncode:
            subprocess.run(["umount", "-l", mountpoint], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_fails_cleanly_and_loses_nothing(library: tuple[Path, Path], tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "2m") as disk:
        db = disk / "db"
        # Without the model's numpy copy, which alone would not fit: indexing then tries to write it to a full disk.
        shutil.copytree(library[1], db, ignore=shutil.ignore_patterns("query-model"))
        before = rows(db)
        extra = tmp_path / "extra"
        write_photos(extra, 3, seed=6)
        filler = fill(disk)
        # In a child process: should SQLite touch a page the full tmpfs cannot back, only the child dies.
        full = subprocess.run([sys.executable, "-m", "clipsearch", "index", str(extra), "--db", str(db)],
                              env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                              timeout=300)
        assert full.returncode == 2, full.stderr
        errors = [line for line in full.stderr.splitlines() if not line.startswith("loading ")]
        assert len(errors) == 1 and errors[0].startswith("clipsearch: error: "), full.stderr
        assert "disk is full" in errors[0] and str(db / "catalog.db") in errors[0], errors[0]

        filler.unlink()
        assert rows(db) == before
        assert len(results(db)) == PHOTOS
        again = run_cli("index", extra, "--db", db)
        assert again.exit_code == 0 and "indexed 3," in again.stderr, again.stderr
        assert len(results(db)) == PHOTOS + 3
