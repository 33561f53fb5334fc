"""Indexing on OpenVINO, the default engine on a CPU: checked against the torch model, cached, rebuilt when damaged,
and never in the way where OpenVINO cannot run.

Whatever CPU runs these, the precision OpenVINO takes is the one `auto` picks for it (bf16, int8 or fp32), and the
checks hold for each: 0.999 cosine to torch fp32 (0.99 for int8).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import IndexedLibrary, TinyModel, model_args, run_cli

pytest.importorskip("openvino")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
QUERIES = ["a red circle", "a blue square", "a green triangle", "a yellow star", "an arrow pointing up",
           "an arrow pointing left", "a purple hexagon", "a white cross"]


def vectors(db: Path) -> dict[str, np.ndarray]:
    connection = sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True)
    try:
        return {path.decode() if isinstance(path, bytes) else path: np.frombuffer(vector, np.float32)
                for path, vector in connection.execute("SELECT path, vector FROM files")}
    finally:
        connection.close()


def top10(db: Path, text: str) -> set[str]:
    return {r["path"] for r in json.loads(run_cli("query", text, "--db", db, "-n", "10", "-f", "json").stdout)}


@pytest.fixture(scope="module")
def openvino_db(indexed_library: IndexedLibrary, test_model: TinyModel,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("openvino") / "db"
    result = run_cli("index", indexed_library.root, "--db", db, *model_args(test_model), "--engine", "auto")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # the conversion's tools (NNCF) keep quiet: stdout is for results
    return db, result.stderr


def test_the_default_engine_on_a_cpu_embeds_like_the_model(openvino_db: tuple[Path, str],
                                                          indexed_library: IndexedLibrary) -> None:
    db, stderr = openvino_db
    assert "converting the image tower to OpenVINO" in stderr and "embedding with OpenVINO" in stderr
    engine = json.loads(run_cli("status", "--json", "--db", db).stdout)["engine"]
    assert engine["name"] == "openvino" and engine["precision"] in ("bf16", "int8", "fp32")
    # auto's precision is the fastest faithful one, timed on this CPU (where the CPU offers more than fp32)
    speeds = json.loads((db / "openvino" / "manifest.json").read_text())["speeds"]
    assert not speeds or speeds[engine["precision"]] == max(speeds.values()), speeds
    assert len(speeds) <= 1 or "measured here" in engine["reason"], engine
    ours, torch = vectors(db), vectors(indexed_library.db)
    assert ours.keys() == torch.keys()
    cosine = min(float(ours[path] @ torch[path]) for path in ours)
    assert cosine >= (0.99 if engine["precision"] == "int8" else 0.999), cosine
    for text in QUERIES:  # the quality gate's queries find the same photos
        assert top10(db, text) == top10(indexed_library.db, text), text


def test_later_runs_take_the_converted_tower_without_importing_torch(openvino_db: tuple[Path, str],
                                                                     indexed_library: IndexedLibrary,
                                                                     tmp_path: Path) -> None:
    db = tmp_path / "db"
    shutil.copytree(openvino_db[0], db)
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(indexed_library.photos[0].path, extra / "copy-with-another-name.jpg")
    (extra / "new.png").write_bytes(indexed_library.photos[1].path.read_bytes())
    from PIL import Image

    Image.open(indexed_library.photos[2].path).rotate(90, expand=True).save(extra / "turned.jpg")
    code = ("import sys\nfrom clipsearch.cli import app\n"
            "try:\n    app(['index', sys.argv[1], '--db', sys.argv[2], '--engine', 'auto'])\n"
            "except SystemExit as done:\n    assert not done.code, done.code\n"
            "assert 'torch' not in sys.modules and 'open_clip' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code, str(extra), str(db)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "CLIPSEARCH_ENGINE": "auto"})
    assert done.returncode == 0, done.stderr
    assert "embedding with OpenVINO" in done.stderr and "converting" not in done.stderr
    assert "indexed 3," in done.stderr
    # the speeds measured by the first run on this CPU are reused, not measured again
    manifests = [json.loads((folder / "openvino" / "manifest.json").read_text()) for folder in (openvino_db[0], db)]
    assert manifests[0]["speeds"] == manifests[1]["speeds"]


def test_a_damaged_conversion_is_made_again(openvino_db: tuple[Path, str], indexed_library: IndexedLibrary,
                                           tmp_path: Path) -> None:
    db = tmp_path / "db"
    shutil.copytree(openvino_db[0], db)
    weights = db / "openvino" / "image.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # zeros in the middle: the size is the same
    weights.write_bytes(bytes(data))
    new = tmp_path / "new"
    new.mkdir()
    from PIL import Image

    Image.open(indexed_library.photos[3].path).rotate(180).save(new / "turned.jpg")
    result = run_cli("index", new, "--db", db, "--engine", "auto")
    assert result.exit_code == 0, result.stderr
    assert "converting the image tower to OpenVINO" in result.stderr  # not trusted: made again from the model


def test_when_no_precision_passes_its_check_torch_does_the_work(indexed_library: IndexedLibrary,
                                                                test_model: TinyModel, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPSEARCH_OPENVINO_MIN_COSINE", "1.5")  # more than any precision can give
    db = tmp_path / "db"
    root = tmp_path / "photos"
    shutil.copytree(indexed_library.root / "2019", root)
    result = run_cli("index", root, "--db", db, *model_args(test_model), "--engine", "auto")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "OpenVINO" in line]
    assert lines[-1] == ("OpenVINO's embeddings did not match the model's closely enough at any precision: "
                         "embedding with torch")
    torch = vectors(indexed_library.db)
    original = {path: str(indexed_library.root / "2019" / Path(path).relative_to(root)) for path in vectors(db)}
    assert all(float(vector @ torch[original[path]]) >= 0.9999 for path, vector in vectors(db).items())


def test_where_openvino_cannot_be_imported_auto_uses_torch(indexed_library: IndexedLibrary, test_model: TinyModel,
                                                           tmp_path: Path) -> None:
    """As on a platform without an OpenVINO wheel: the import fails, and nothing else changes."""
    harness = ("import sys\nsys.modules['openvino'] = None\nfrom clipsearch.cli import main\n"
               "sys.argv[0] = 'clipsearch'\nmain()\n")
    root = tmp_path / "photos"
    shutil.copytree(indexed_library.root / "downloads", root)
    env = {**os.environ, "CLIPSEARCH_ENGINE": "auto"}
    done = subprocess.run([sys.executable, "-c", harness, "index", str(root), "--db", str(tmp_path / "db"),
                           *map(str, model_args(test_model))], cwd=REPO, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "OpenVINO" not in done.stderr and "indexed 4," in done.stderr
    forced = subprocess.run([sys.executable, "-c", harness, "index", str(root), "--db", str(tmp_path / "db2"),
                             *map(str, model_args(test_model)), "--engine", "openvino"], cwd=REPO,
                            capture_output=True, text=True)
    assert forced.returncode == 2
    assert forced.stderr.strip() == "clipsearch: error: --engine openvino: OpenVINO is not installed (pip install " \
                                    "openvino)"


@pytest.mark.parametrize("damage", ["deleted", "truncated", "garbage"])
@pytest.mark.parametrize("name", ["probes.npy", "reference.npy", "image.xml", "image.bin"])
def test_any_damaged_file_of_the_conversion_means_convert_again(openvino_db: tuple[Path, str],
                                                                indexed_library: IndexedLibrary, tmp_path: Path,
                                                                name: str, damage: str) -> None:
    """Every file of the converted tower is in its fingerprint: damage to any is a rebuild, never an error."""
    db = tmp_path / "db"
    shutil.copytree(openvino_db[0], db)
    damaged = db / "openvino" / name
    if damage == "deleted":
        damaged.unlink()
    elif damage == "truncated":
        damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    else:
        damaged.write_bytes(os.urandom(damaged.stat().st_size))
    new = tmp_path / "new"
    new.mkdir()
    from PIL import Image

    Image.open(indexed_library.photos[3].path).rotate(90).save(new / "another.jpg")  # new content: model work
    result = run_cli("index", new, "--db", db, "--engine", "auto")
    assert result.exit_code == 0, result.stderr
    assert "converting the image tower to OpenVINO" in result.stderr and "embedding with OpenVINO" in result.stderr
    Image.open(indexed_library.photos[4].path).rotate(90).save(new / "one-more.jpg")
    again = run_cli("index", new, "--db", db, "--engine", "auto")
    assert again.exit_code == 0, again.stderr
    assert "converting" not in again.stderr and "embedding with OpenVINO" in again.stderr  # the rebuilt one holds
