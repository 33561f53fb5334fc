"""Files derived from the catalogue (vector indexes, the query model) are trusted only when they are provably the
ones written for it: anything else is not used, and is made again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import TinyModel, model_args, run_cli, status, write_photos


@pytest.fixture(scope="module")
def regions_db(tmp_path_factory: pytest.TempPathFactory, test_model: TinyModel) -> Path:
    photos = tmp_path_factory.mktemp("regions-photos")
    write_photos(photos, 12, seed=10, size=(320, 240))
    db = tmp_path_factory.mktemp("regions-db") / "db"
    result = run_cli("index", photos, "--db", db, "--regions", *model_args(test_model))
    assert result.exit_code == 0, result.stderr
    _top(db, "a photo")  # the first query saves the regions' index
    assert (db / "regions.hnsw").is_file() and (db / "vectors.hnsw").is_file()
    return db


def _top(db: Path, text: str) -> list[str]:
    result = run_cli("query", text, "--db", db, "-n", "5", "-f", "json")
    assert result.exit_code == 0, result.stderr
    return [r["path"] for r in json.loads(result.stdout)]


def test_the_regions_index_copied_over_the_files_index_is_not_trusted(regions_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "db"
    shutil.copytree(regions_db, db)
    expected = _top(db, "a red circle")
    shutil.copy(db / "regions.hnsw", db / "vectors.hnsw")
    shutil.copy(db / "regions.json", db / "vectors.json")
    assert status(db)["index"]["state"] != "current"
    assert _top(db, "a red circle") == expected  # rebuilt from the catalogue, not searched
    assert status(db)["index"]["state"] == "current"
