"""An empty path is an error everywhere, never the current folder (Typer's Path turns "" into Path('.'))."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import IndexedLibrary, one_error_line, run_cli, status, write_photos

EMPTY_PATHS = [
    ("index", ""),
    ("forget", ""),
    ("forget", "x", ""),
    ("query", "cat", "--link-to", ""),
    ("query", "cat", "--contact-sheet", ""),
    ("query", "cat", "--in", ""),
    ("query", "cat", "--db", ""),
    ("status", "--db", ""),
    ("similar", ""),
    ("locate", "cat", ""),
    ("classify", "", "--labels", "a,b"),
    ("classify", "x.jpg", "--labels-file", ""),
    ("tag", "--vocabulary", ""),
]


@pytest.mark.parametrize("args", EMPTY_PATHS, ids=" ".join)
def test_an_empty_path_is_an_error_not_the_current_folder(args: tuple[str, ...], tmp_path: Path,
                                                          indexed_library: IndexedLibrary,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "db"
    shutil.copytree(indexed_library.db, db)
    before = status(db)["images"]
    cwd = tmp_path / "cwd"
    write_photos(cwd, 2, seed=7)
    monkeypatch.chdir(cwd)
    extra = () if "--db" in args else ("--db", str(db))
    one_error_line(run_cli(*args, *extra), "empty path")
    assert sorted(p.name for p in cwd.iterdir()) == ["img-7-0.jpg", "img-7-1.jpg"]  # nothing written here
    assert status(db)["images"] == before  # nothing forgotten, nothing indexed


def test_an_empty_database_variable_means_unset_not_the_current_folder(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """$CLIPSEARCH_DB="" is as if it were unset (click's rule for every variable): the default database."""
    monkeypatch.setenv("CLIPSEARCH_DB", "")
    monkeypatch.chdir(tmp_path)
    result = run_cli("status", "--json")
    assert result.exit_code == 0, result.stderr
    assert '"database": "' + str(tmp_path / "xdg-data" / "clipsearch") in result.stdout.replace("\\\\", "\\")
    assert list(tmp_path.glob("catalog.db*")) == []


def test_link_to_a_file_and_contact_sheet_to_a_folder_are_still_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    one_error_line(run_cli("query", "cat", "--link-to", tmp_path / "f"), "--link-to", "is a file")
    one_error_line(run_cli("query", "cat", "--contact-sheet", tmp_path), "--contact-sheet", "is a folder")
