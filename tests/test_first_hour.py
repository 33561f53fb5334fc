"""The first hour: what a new user tripped over, each fixed at its cause and shown here."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import IndexedLibrary, TinyModel, model_args, one_error_line, run_cli, status, write_photos
from PIL import Image


@pytest.fixture()
def own_model(tmp_path: Path, test_model: TinyModel) -> TinyModel:
    """The test model's files in a folder of their own, so that a test can move them away."""
    folder = tmp_path / "model"
    folder.mkdir()
    return TinyModel(Path(shutil.copy2(test_model.config, folder)), Path(shutil.copy2(test_model.checkpoint, folder)))


def test_raising_the_megapixel_limit_brings_back_what_a_lower_one_skipped(tmp_path: Path,
                                                                         test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 1, seed=1, size=(1600, 1200))  # 1.92 MP
    first = run_cli("index", photos, "--db", db, "--max-megapixels", "1", *model_args(test_model))
    assert "over the 1 MP limit" in first.stderr and "indexed 0," in first.stderr
    again = run_cli("index", photos, "--db", db)  # the folder remembers its limit
    assert "indexed 0," in again.stderr and "skipped 1 (1 known" in again.stderr, again.stderr
    raised = run_cli("index", photos, "--db", db, "--max-megapixels", "5")
    assert "indexed 1," in raised.stderr, raised.stderr
    assert status(db)["known_bad_files"] == 0


def test_a_database_keeps_its_model_after_forget_removes_everything(tmp_path: Path, test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 2, seed=1)
    assert run_cli("index", photos, "--db", db, *model_args(test_model)).exit_code == 0
    model = status(db)["model"]
    forgotten = run_cli("forget", photos, "--db", db)
    assert forgotten.exit_code == 0 and "forgot 2 files and 1 indexed folder" in forgotten.stderr
    again = run_cli("index", photos, "--db", db)  # no --model: the database's own, not the default
    assert again.exit_code == 0, again.stderr
    assert status(db)["model"] == model and status(db)["images"] == 2


def test_queries_need_no_model_files_and_one_message_names_both_flags(tmp_path: Path, own_model: TinyModel,
                                                                      photo_library) -> None:
    _, photos = photo_library
    folder, db = tmp_path / "photos", tmp_path / "db"
    folder.mkdir()
    for photo in photos[:4]:
        shutil.copy2(photo.path, folder)
    assert run_cli("index", folder, "--db", db, *model_args(own_model)).exit_code == 0
    moved = tmp_path / "moved"
    shutil.move(own_model.config.parent, moved)
    assert run_cli("query", "a red circle", "--db", db).exit_code == 0  # the query model needs neither file
    outside = tmp_path / "outside.png"  # not indexed, and the test model's image tower is not in the query model
    Image.open(photos[5].path).save(outside)
    line = one_error_line(run_cli("similar", outside, "--db", db))
    assert "--model" in line and "--pretrained" in line and "moved" in line
    fixed = run_cli("similar", outside, "--db", db, "--model", moved / own_model.config.name,
                    "--pretrained", moved / own_model.checkpoint.name)
    assert fixed.exit_code == 0, fixed.stderr
    # A search only reads: the database learns the new place from the next writer told of it.
    assert "moved" in one_error_line(run_cli("similar", outside, "--db", db))
    told = run_cli("index", "--db", db, "--model", moved / own_model.config.name, "--pretrained",
                   moved / own_model.checkpoint.name)
    assert told.exit_code == 0, told.stderr
    assert run_cli("similar", outside, "--db", db).exit_code == 0  # the database remembers where they are now


def test_weights_for_another_model_are_one_line_naming_the_model(tmp_path: Path, random_vit: TinyModel,
                                                                 test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 1, seed=1)
    wrong = ["--model", random_vit.config, "--pretrained", test_model.checkpoint]
    line = one_error_line(run_cli("index", photos, "--db", db, *wrong))
    assert "does not fit the model tiny-random-vit" in line and "internal error" not in line


def test_with_traceback_an_error_shows_its_traceback_and_does_not_ask_for_one(tmp_path: Path, random_vit: TinyModel,
                                                                              test_model: TinyModel) -> None:
    photos = tmp_path / "photos"
    write_photos(photos, 1, seed=1)
    wrong = ["--model", random_vit.config, "--pretrained", test_model.checkpoint]
    traced = run_cli("index", photos, "--db", tmp_path / "db2", *wrong, "--traceback")
    assert traced.exit_code == 2 and "Traceback" in traced.stderr and "rerun with --traceback" not in traced.stderr


def test_a_mistyped_model_name_is_said_before_anything_loads_with_the_closest_names(tmp_path: Path) -> None:
    result = run_cli("index", tmp_path, "--db", tmp_path / "db", "--model", "ViT-B-23")
    line = one_error_line(result)
    assert result.stderr.splitlines() == [line]  # no "loading ..." first: the name is checked before any model loads
    assert "no such open_clip model" in line and "ViT-B-32" in line


def test_crawl_options_stick_to_their_folder(tmp_path: Path, test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 2, seed=1)
    write_photos(photos / "Drawings", 2, seed=2)
    first = run_cli("index", photos, "--db", db, "--exclude", "Drawings/", *model_args(test_model))
    assert "indexed 2," in first.stderr, first.stderr  # a trailing slash names a folder
    assert "indexed 0, unchanged 2" in run_cli("index", photos, "--db", db).stderr  # remembered
    assert "indexed 0, unchanged 2" in run_cli("index", "--db", db).stderr  # every known folder, as it was
    assert "--exclude Drawings/" in run_cli("status", "--db", db).stdout
    assert status(db)["root_options"][str(photos)]["excludes"] == ["Drawings/"]
    cleared = run_cli("index", photos, "--db", db, "--no-exclude")
    assert "indexed 2, unchanged 2" in cleared.stderr, cleared.stderr


def test_results_whose_file_is_gone_are_left_out_and_said(tmp_path: Path, test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    paths = write_photos(photos, 4, seed=1)
    assert run_cli("index", photos, "--db", db, *model_args(test_model)).exit_code == 0
    paths[0].unlink()
    result = run_cli("query", "a red circle", "--db", db, "-n", "4", "-f", "json")
    assert result.exit_code == 0
    shown = [r["path"] for r in json.loads(result.stdout)]
    assert str(paths[0]) not in shown and len(shown) == 3
    assert "left out 1 result whose file no longer exists" in result.stderr


def test_skipped_and_ignored_files_are_named(tmp_path: Path, test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 1, seed=1)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    for name in ("IMG_0001.CR2", "IMG_0002.NEF", "clip.MOV", "notes.txt"):
        (photos / name).write_bytes(b"x")
    first = run_cli("index", photos, "--db", db, *model_args(test_model))
    assert "ignored 2 RAW files, 1 video:" in first.stderr, first.stderr
    listing = run_cli("status", "--skipped", "--db", db).stdout
    assert f"{photos / 'broken.jpg'}: " in listing
    assert [f["path"] for f in json.loads(run_cli("status", "--json", "--skipped", "--db", db).stdout)["skipped"]] \
        == [str(photos / "broken.jpg")]


def test_status_is_structured_and_says_who_is_writing(indexed_library: IndexedLibrary) -> None:
    from clipsearch.config import DataDir
    from clipsearch.store.lock import writer_lock

    report = status(indexed_library.db)
    assert report["index"]["state"] == "current" and report["index"]["size_bytes"] > 0
    assert report["query_model"]["state"] == "ready" and report["server"] is None and report["writer"] is None
    assert "not running" in run_cli("status", "--db", indexed_library.db).stdout
    with writer_lock(DataDir(indexed_library.db), wait=False):
        assert "clipsearch pid" in status(indexed_library.db)["writer"]


def test_argument_mistakes_are_said_plainly(tmp_path: Path, indexed_library: IndexedLibrary) -> None:
    db = indexed_library.db
    one_error_line(run_cli("query", "-", "red", "--db", db), "'-' reads queries from stdin")
    one_error_line(run_cli("query", "-", "--db", db, input=""), "no queries on stdin")
    newdir = tmp_path / "newdir"
    one_error_line(run_cli("forget", indexed_library.root, "--db", newdir), "no catalogue")
    assert not newdir.exists()  # nothing was created on the way to the error
    somefile = tmp_path / "somefile"
    somefile.write_text("x")
    one_error_line(run_cli("status", "--db", somefile), "--db")
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n")
    one_error_line(run_cli("similar", notes, "--db", db), "not an image")


def test_a_repeated_in_finds_photos_in_either_folder(indexed_library: IndexedLibrary) -> None:
    two = run_cli("query", "a red circle", "--in", indexed_library.root / "2019", "--in",
                  indexed_library.root / "downloads", "-n", "100", "-f", "json", "--db", indexed_library.db)
    folders = {Path(r["path"]).relative_to(indexed_library.root).parts[0] for r in json.loads(two.stdout)}
    assert folders == {"2019", "downloads"}  # a repeated --in means either


def test_a_text_file_named_to_index_is_refused_before_any_model_loads(tmp_path: Path, own_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 1, seed=1)
    assert run_cli("index", photos, "--db", db, *model_args(own_model)).exit_code == 0
    shutil.rmtree(own_model.config.parent)  # loading the model would now fail: it is never tried
    notes = photos / "notes.txt"
    notes.write_text("shopping list\n")
    result = run_cli("index", notes, "--db", db)
    assert result.exit_code == 0 and f"skipped {notes}: not an image" in result.stderr, result.stderr


def test_search_answers_as_query_does(indexed_library: IndexedLibrary) -> None:
    db = indexed_library.db
    assert run_cli("search", "a red circle", "--db", db, "-f", "json").stdout == \
        run_cli("query", "a red circle", "--db", db, "-f", "json").stdout


def test_similar_finds_a_copy_by_its_content_with_its_stored_vector(indexed_library: IndexedLibrary,
                                                                    tmp_path: Path) -> None:
    db = indexed_library.db
    photo = indexed_library.photos[3].path
    copy = tmp_path / "copy.jpg"
    shutil.copy2(photo, copy)
    as_copy = json.loads(run_cli("similar", copy, "--db", db, "-f", "json", "-n", "1").stdout)
    assert as_copy[0]["path"] == str(photo) and as_copy[0]["score"] > 0.9999  # its stored vector, not embedded


def test_link_to_makes_a_folder_of_links_named_by_rank(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    picks = tmp_path / "picks"
    result = run_cli("query", "a red circle", "--db", indexed_library.db, "-n", "20", "--link-to", picks,
                     "-f", "json")
    assert result.exit_code == 0 and "linked 20 results" in result.stderr
    links = sorted(picks.iterdir())
    assert [link.name[:3] for link in links] == [f"{n:02d}-" for n in range(1, 21)]
    assert [str(link.resolve()) for link in links] == [r["path"] for r in json.loads(result.stdout)]
    assert all(link.is_symlink() for link in links)
    again = run_cli("query", "a blue square", "--db", indexed_library.db, "-n", "20", "--link-to", picks)
    assert again.exit_code == 0  # its own links are replaced; nothing else is touched


def test_the_catalogue_of_a_database_is_not_readable_by_others_even_with_a_loose_umask(
        tmp_path: Path, test_model: TinyModel) -> None:
    import os
    import stat

    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 1, seed=1)
    previous = os.umask(0o022)
    try:
        assert run_cli("index", photos, "--db", db, *model_args(test_model)).exit_code == 0
    finally:
        os.umask(previous)
    with sqlite3.connect(db / "catalog.db") as connection:  # make SQLite create -wal and -shm now
        connection.execute("SELECT count(*) FROM files").fetchone()
        for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
            assert stat.S_IMODE((db / name).stat().st_mode) & 0o077 == 0, name
