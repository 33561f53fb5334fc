"""Shared fixtures: a realistic photo folder, the tiny test model, and an environment that stays offline."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# Set before any test module imports open_clip (and with it huggingface_hub, which reads these once, at import).
os.environ["HF_HUB_OFFLINE"] = "1"
# torch, as everywhere before OpenVINO: tests compare embeddings at 0.9999 and index hundreds of fresh databases
# (session fixtures included, hence here). tests/test_openvino.py runs OpenVINO, the default on a CPU, explicitly.
os.environ["CLIPSEARCH_ENGINE"] = "torch"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="clipsearch-tests-hf-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)

from helpers import (  # noqa: E402  (after the environment above; helpers puts tests/model on sys.path)
    MODEL_DIR,
    TEST_MODEL_NAME,
    TEST_VIT_NAME,
    TINY_VIT,
    IndexedLibrary,
    TinyModel,
    model_args,
    run_cli,
)
from photos import Photo, write_photo_library  # noqa: E402

if TYPE_CHECKING:
    from web_server import WebServer

# Servers' sockets go here: short, because a Unix socket path must fit in about 100 bytes.
RUNTIME_DIR = tempfile.mkdtemp(prefix="cs-run-")
os.environ["XDG_RUNTIME_DIR"] = RUNTIME_DIR  # for servers started by module fixtures, before any test's own setup


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own database, and nothing downloads or writes under the user's home."""
    monkeypatch.setenv("CLIPSEARCH_DB", str(tmp_path / "clipsearch-db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", RUNTIME_DIR)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CLIPSEARCH_ENGINE", "torch")


@pytest.fixture(scope="session")
def photo_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Photo]]:
    """(root, photos), written once per session: treat it as read-only, copy it to change it."""
    root = tmp_path_factory.mktemp("library")
    return root, write_photo_library(root)


@pytest.fixture(scope="session")
def test_model() -> TinyModel:
    model = TinyModel(
        config=MODEL_DIR / f"{TEST_MODEL_NAME}.json",
        checkpoint=MODEL_DIR / f"{TEST_MODEL_NAME}.pt",
    )
    if not model.checkpoint.is_file():
        pytest.skip(f"test model checkpoint {model.checkpoint} is missing; train it with tests/model/train.py")
    return model


@pytest.fixture(scope="session")
def test_vit() -> TinyModel:
    """The test model's ViT twin, trained the same way: int8 and the numpy image tower apply to it."""
    return TinyModel(MODEL_DIR / f"{TEST_VIT_NAME}.json", MODEL_DIR / f"{TEST_VIT_NAME}.pt")


@pytest.fixture(scope="session")
def random_vit(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """A small ViT with random weights, as config and local checkpoint: int8 and the numpy copy's image tower
    apply to it (the trained test model's image tower is a ResNet)."""
    import json

    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("vit")
    config = folder / "tiny-random-vit.json"
    config.write_text(json.dumps(TINY_VIT))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = folder / "tiny-random-vit.pt"
    torch.save(open_clip.create_model("tiny-random-vit").state_dict(), checkpoint)
    return TinyModel(config, checkpoint)


@pytest.fixture(scope="session")
def indexed_library(photo_library: tuple[Path, list[Photo]], test_model: TinyModel,
                    tmp_path_factory: pytest.TempPathFactory) -> IndexedLibrary:
    """The photo library indexed once with the test model. Read-only: copy it to change it."""
    root, photos = photo_library
    db = tmp_path_factory.mktemp("indexed") / "db"
    result = run_cli("index", root, "--db", db, *model_args(test_model))
    assert result.exit_code == 0, result.stderr
    return IndexedLibrary(db, root, photos, result.stderr)


@pytest.fixture(scope="module")
def web_db(indexed_library: IndexedLibrary, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the indexed photo library's database, for one module's `clipsearch web`."""
    copy = tmp_path_factory.mktemp("web") / "db"
    shutil.copytree(indexed_library.db, copy)
    return copy


@pytest.fixture(scope="module")
def web(web_db: Path) -> Iterator[WebServer]:
    """`clipsearch web` serving web_db for the module's tests."""
    from web_server import running_web

    with running_web(web_db) as server:
        yield server
