"""The Python API as a script uses it: `from clipsearch import Library`, and nothing else of clipsearch."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import IndexedLibrary, TinyModel, shows

import clipsearch
from clipsearch import ClipsearchError, Library, Result, UsageError

REPO = Path(__file__).resolve().parent.parent


def documented_script() -> str:
    """The complete script of docs/api.md, exactly as the page shows it."""
    page = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", page, re.S).group(1)


def test_the_documented_script_imports_only_clipsearch() -> None:
    imported = set()
    for node in ast.walk(ast.parse(documented_script())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"sys", "clipsearch"}


def test_the_documented_script_indexes_and_searches_by_text_image_and_date(
        photo_library, test_model: TinyModel, tmp_path: Path) -> None:
    root, photos = photo_library
    script = tmp_path / "search_photos.py"
    script.write_text(documented_script(), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(root), str(tmp_path / "db"), str(test_model.config),
                           str(test_model.checkpoint)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("indexed ") and int(lines[0].split()[1]) > 20
    by_path = {str(p.path): p for p in photos}
    text_hits = [line.split(maxsplit=2)[2] for line in lines if line.startswith("text: ")]
    assert len(text_hits) == 3 and shows(by_path[text_hits[0]], "red", "circle")
    like_hits = [line.split(maxsplit=3)[3] for line in lines if line.startswith("like it: ")]
    assert len(like_hits) == 3 and text_hits[0] not in like_hits  # similar leaves the photo itself out
    dated = [line.split()[-2] for line in lines if line.startswith("from 2020 to May 2021: ")]
    assert dated and all("2020-01-01" <= taken < "2021-06-01" for taken in dated)
    assert re.fullmatch(r"\d+ photos in .*/db, model .+", lines[-1])


def test_results_are_frozen_dataclasses_with_the_photo_facts(indexed_library: IndexedLibrary) -> None:
    with Library(indexed_library.db) as photos:
        results = photos.search("a blue square", limit=5)
    assert len(results) == 5 and results.missing == 0
    first = results[0]
    assert isinstance(first, Result) and dataclasses.is_dataclass(first)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.score = 1.0  # type: ignore[misc]
    photo = indexed_library.photo(first.path)
    assert shows(photo, "blue", "square")
    assert (first.width, first.height) == photo.size and first.taken_at == photo.taken_at
    assert first.box is None and first.query == "a blue square" and first.rank == 1
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_several_queries_and_filters_in_one_call(indexed_library: IndexedLibrary) -> None:
    with Library(indexed_library.db) as photos:
        both = photos.search(["a red circle", "a green triangle"], limit=2)
        in_2019 = photos.search("a photo", after="2019", before="2020", limit=50)
        by_date = photos.search("a photo", limit=50, sort="date")
    assert [r.query for r in both] == ["a red circle"] * 2 + ["a green triangle"] * 2
    assert in_2019 and all(r.taken_at and r.taken_at.startswith("2019") for r in in_2019)
    dates = [r.taken_at for r in by_date if r.taken_at]
    assert dates == sorted(dates)


def test_similar_classify_locate_and_duplicates(indexed_library: IndexedLibrary) -> None:
    circle = next(p for p in indexed_library.photos if shows(p, "red", "circle"))
    with Library(indexed_library.db) as photos:
        alike = photos.similar(circle.path, limit=3)
        itself = photos.similar(circle.path, limit=1, include_self=True)
        labels = photos.classify(circle.path, ["a red circle", "a blue square", "a green triangle"], top=1)
        boxes = photos.locate("a red circle", [circle.path], top=2)
        groups = photos.duplicates()
    assert str(circle.path) not in [r.path for r in alike] and itself[0].path == str(circle.path)
    assert [(c.label, c.rank) for c in labels] == [("a red circle", 1)]
    assert [b.rank for b in boxes] == [1, 2] and all(b.path == str(circle.path) for b in boxes)
    assert all(b.box.x >= 0 and b.box.x + b.box.w <= circle.size[0] for b in boxes)
    assert all(g.kind in ("exact", "near") and len(g.paths) >= 2 for g in groups)


def test_one_library_loads_its_model_once_for_many_searches(indexed_library: IndexedLibrary) -> None:
    with Library(indexed_library.db, use_server=False) as photos:
        photos.search("a red circle")
        searcher_before = photos.local._searcher
        for text in ("a blue square", "a green triangle", "a yellow star"):
            photos.search(text, where=True)
        assert photos.local._searcher is searcher_before


def test_mistakes_are_clipsearch_errors_with_one_line(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    photos = Library(indexed_library.db)
    for mistake in (lambda: Library(""), lambda: photos.search(""), lambda: photos.similar(""),
                    lambda: photos.forget(""), lambda: photos.index([""]), lambda: photos.search("x", tags="dog"),
                    lambda: photos.search("x", after="last week"), lambda: photos.search("x", sort="size"),
                    lambda: photos.classify([], ["cat"])):
        with pytest.raises(UsageError) as raised:
            mistake()
        assert "\n" not in str(raised.value)
    with pytest.raises(ClipsearchError, match="index FOLDER"):
        Library(tmp_path / "empty").search("a cat")


def test_reading_a_database_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    report = Library(missing).status()
    assert report.images == 0 and report.server is None
    with pytest.raises(ClipsearchError):
        Library(missing).tags()
    assert not missing.exists()


def test_importing_clipsearch_loads_nothing_heavy() -> None:
    code = ("import sys, clipsearch; from clipsearch import Library, Result; Library('/nonexistent'); "
            "print(sorted(m for m in ('torch', 'open_clip', 'numpy', 'PIL', 'hnswlib', 'transformers') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_package_declares_its_public_names_and_types() -> None:
    for name in clipsearch.__all__:
        assert getattr(clipsearch, name) is not None
    assert (Path(clipsearch.__file__).parent / "py.typed").is_file()


def test_a_copied_database_answers_the_same(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(indexed_library.db, tmp_path / "db"))
    with Library(indexed_library.db) as original, Library(copy) as copied:
        assert [r.path for r in original.search("a purple circle")] == [r.path for r in copied.search(
            "a purple circle")]
