"""With regions on, every photo gets its regions, whatever its history: touched since, or in flight in a crash."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, TinyModel, model_args, run_cli, status, write_photos

GRID_REGIONS = 9  # the default grid's crops per photo (3 x 3)


def region_counts(db: Path) -> tuple[int, int]:
    """(photos, photos with regions) in the catalogue."""
    with sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True) as connection:
        files = connection.execute("SELECT count(*) FROM files").fetchone()[0]
        with_regions = connection.execute("SELECT count(DISTINCT file_id) FROM regions").fetchone()[0]
    return files, with_regions


def test_turning_regions_on_covers_touched_photos_too(test_model: TinyModel, tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos", 6, seed=12)
    db = tmp_path / "db"
    assert run_cli("index", tmp_path / "photos", "--db", db, *model_args(test_model)).exit_code == 0
    for photo in photos:  # new times, the same content
        stat = photo.stat()
        os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    result = run_cli("index", tmp_path / "photos", "--db", db, "--regions")
    assert result.exit_code == 0, result.stderr
    assert region_counts(db) == (6, 6)
    assert status(db)["regions"] == GRID_REGIONS * 6


@pytest.mark.slow
def test_the_run_after_a_kill_makes_regions_for_the_files_it_decodes_in_quarantine(test_model: TinyModel,
                                                                                   tmp_path: Path) -> None:
    root = tmp_path / "photos"
    write_photos(root, 300, seed=11, size=(80, 60))
    db = tmp_path / "db"
    command = [sys.executable, "-m", "clipsearch", "index", str(root), "--db", str(db), *model_args(test_model),
               "--batch-size", "2", "--regions"]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if region_counts(db)[0] >= 20:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    process.kill()
    process.wait()
    files, _ = region_counts(db)
    assert 0 < files < 300, "the kill should land in the middle of the run"
    result = run_cli("index", root, "--db", db)
    assert result.exit_code == 0, result.stderr
    assert "that were being read when an earlier run died" in result.stderr  # the quarantine path ran
    assert region_counts(db) == (300, 300)
