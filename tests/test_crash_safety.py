"""Crash safety and concurrency: kill -9 at random moments, Ctrl-C, two writers, readers during a write."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TinyModel, model_args, run_cli
from scenes import random_scene, render

from clipsearch.config import DataDir
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import VectorIndex

pytestmark = pytest.mark.slow  # the quick tier (-m "not slow") leaves these to CI

REPO = Path(__file__).resolve().parent.parent
KILLS = 20
PHOTOS = 1200


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred small JPEGs: enough batches for kills to land anywhere in a run."""
    root = tmp_path_factory.mktemp("small")
    rng = random.Random(99)
    for k in range(PHOTOS):
        folder = root / f"roll-{k // 100}"
        folder.mkdir(exist_ok=True)
        render(random_scene(rng), 80, 60).save(folder / f"img-{k:04d}.jpg", quality=85)
    return root


def start_index(root: Path, db: Path, model: TinyModel, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "clipsearch", "index", str(root), "--db", str(db), *model_args(model),
               "--batch-size", "2", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed(db: Path) -> dict[str, int]:
    """path -> the change number it was embedded at, as committed in the catalogue."""
    if not (db / "catalog.db").exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True) as connection:
            return {os.fsdecode(p): seq for p, seq in connection.execute("SELECT path, seq FROM files")}
    except sqlite3.OperationalError:  # created, but its first migration was not committed yet
        return {}


def wait_for_growth(db: Path, count: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if len(committed(db)) > count:
            return
        time.sleep(0.02)


def assert_catalogue_and_index_agree(db: Path) -> None:
    data_dir = DataDir(db)
    catalog = Catalog(data_dir.catalog)
    try:
        ids, vectors = [], []
        for chunk_ids, chunk in catalog.files.vectors():
            ids += chunk_ids.tolist()
            vectors.append(chunk)
        if not ids:
            return
        index, _ = VectorIndex.open(data_dir, catalog, vectors[0].shape[1])
        matrix = np.concatenate(vectors)
        assert len(index) == len(ids)
        for row_id, vector in zip(ids, matrix):  # every row is searchable, as itself
            hits = index.search(vector, 3)
            assert any(h.id == row_id and h.score > 0.999 for h in hits), (row_id, hits)
        everything = index.search(matrix[0], len(ids))  # no label points at a missing row
        assert {h.id for h in everything} <= set(ids)
    finally:
        catalog.close()


def test_kill_9_at_random_moments_loses_nothing_committed(small_photos: Path, test_model: TinyModel,
                                                          tmp_path: Path) -> None:
    db = tmp_path / "db"
    rng = random.Random(2026)
    before: dict[str, int] = {}
    for kill in range(KILLS):
        process = start_index(small_photos, db, test_model)
        if kill % 2:
            time.sleep(rng.uniform(0.0, 2.5))  # anywhere: start-up, crawl, model load, first batches
        else:
            wait_for_growth(db, len(before), process)  # in the middle of the batches
            time.sleep(rng.uniform(0.0, 0.2))
        process.kill()
        process.wait()
        after = committed(db)
        # Nothing committed is lost, and nothing committed is embedded again.
        assert {p: after.get(p) for p in before} == before
        before = after
        if after:
            assert run_cli("status", "--db", db).exit_code == 0
            assert run_cli("query", "a red circle", "--db", db).exit_code == 0
            assert_catalogue_and_index_agree(db)
    assert 0 < len(before) < PHOTOS, "the kills should have interrupted the indexing part-way"
    final = start_index(small_photos, db, test_model)
    _, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr
    assert f"indexed {PHOTOS - len(before)}, unchanged {len(before)}, moved 0, removed 0, skipped 0" in stderr
    assert {p: s for p, s in committed(db).items() if p in before} == before
    assert_catalogue_and_index_agree(db)
    assert not list(db.glob("*.tmp*")), "a killed save left temporary files behind"


def test_ctrl_c_stops_cleanly_with_the_summary_so_far(small_photos: Path, test_model: TinyModel,
                                                      tmp_path: Path) -> None:
    db = tmp_path / "db"
    process = start_index(small_photos, db, test_model)
    wait_for_growth(db, 8, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    done = len(committed(db))
    assert f"interrupted: indexed {done}, " in stderr
    assert "Traceback" not in stderr
    assert_catalogue_and_index_agree(db)
    resumed = run_cli("index", small_photos, "--db", db)
    assert f"indexed {PHOTOS - done}, unchanged {done}," in resumed.stderr


def test_a_second_writer_waits_or_fails_with_no_wait(small_photos: Path, test_model: TinyModel,
                                                     tmp_path: Path) -> None:
    db = tmp_path / "db"
    first = start_index(small_photos, db, test_model)
    try:
        wait_for_growth(db, 0, first)
        refused = run_cli("index", small_photos, "--db", db, "--no-wait")
        assert refused.exit_code == 2
        assert "is being written by clipsearch pid" in refused.stderr and "--no-wait" in refused.stderr
        second = start_index(small_photos, db, test_model)
        # Readers are never blocked, and see a consistent, growing index while the writer works.
        seen = 0
        for _ in range(3):
            result = run_cli("query", "an arrow pointing up", "-n", str(PHOTOS), "--db", db)
            assert result.exit_code == 0, result.stderr
            paths = result.stdout.splitlines()
            assert len(paths) >= seen and all(Path(p).is_file() for p in paths)
            seen = len(paths)
        _, second_err = second.communicate(timeout=300)
    finally:
        _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert "waiting for clipsearch pid" in second_err
    assert f"indexed 0, unchanged {PHOTOS}" in second_err
