"""Shared test helpers (not fixtures: those live in conftest.py): driving the CLI, the test models, a few photos."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = Path(__file__).resolve().parent / "model"
if str(MODEL_DIR) not in sys.path:  # scenes.py lives there, shared with the model's training script
    sys.path.insert(0, str(MODEL_DIR))

from photos import Photo  # noqa: E402
from scenes import random_scene, render  # noqa: E402

TEST_MODEL_NAME = "clipsearch-test-tiny"
TEST_VIT_NAME = "clipsearch-test-tiny-vit"

TINY_VIT = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 128, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


@dataclass(frozen=True)
class TinyModel:
    config: Path
    checkpoint: Path


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stdout_bytes: bytes
    stderr: str


@dataclass(frozen=True)
class IndexedLibrary:
    db: Path
    root: Path
    photos: list[Photo]
    index_stderr: str

    def photo(self, path: str) -> Photo:
        return next(p for p in self.photos if str(p.path) == path)


def run_cli(*args: str, input: str | bytes | None = None) -> CliResult:
    """Drive the real CLI in-process, the way a user's shell would (stdout is not a terminal)."""
    from typer.testing import CliRunner

    from clipsearch.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stdout_bytes, result.stderr)


def model_args(model: TinyModel) -> list[str]:
    return ["--model", str(model.config), "--pretrained", str(model.checkpoint)]


def load_encoder(identity, precision: str = "fp32", query_model_to: Path | None = None, **kwargs):
    """The open_clip encoder on the CPU, as the product loads it: query model written first, then the precision."""
    from clipsearch.models.openclip import OpenClipEncoder

    encoder = OpenClipEncoder(identity, "cpu", **kwargs)
    if query_model_to is not None:
        encoder.export_query_model(query_model_to)
    encoder.use_precision(precision)
    return encoder


def one_error_line(result: CliResult, *mentions: str) -> str:
    """The one `clipsearch: error:` line a usage or data error prints (exit 2), holding every mention."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if not line.startswith(("loading ", "writing "))]
    assert len(lines) == 1 and lines[0].startswith("clipsearch: error: "), result.stderr
    for mention in mentions:
        assert mention in lines[0], lines[0]
    return lines[0]


def write_photos(folder: Path, count: int, seed: int, size: tuple[int, int] = (160, 120)) -> list[Path]:
    """`count` random scenes as JPEGs in `folder`, named img-SEED-K.jpg."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = [folder / f"img-{seed}-{k}.jpg" for k in range(count)]
    for path in paths:
        render(random_scene(rng, size="large"), *size).save(path, quality=90)
    return paths


def status(db: Path) -> dict:
    """`clipsearch status --json` of a database."""
    result = run_cli("status", "--json", "--db", db)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def shows(photo: Photo, colour: str, kind: str) -> bool:
    """Whether any object in the photo's scene is this colour and kind."""
    return any(o.colour == colour and o.kind == kind for o in photo.scene.objects)


@contextlib.contextmanager
def running_server(db: Path, *extra: str) -> Iterator[subprocess.Popen]:
    """`clipsearch serve` on a database, from when it answers until the block ends."""
    server = subprocess.Popen([sys.executable, "-m", "clipsearch", "serve", "--db", str(db), *extra],
                              cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        for line in server.stderr:  # "loading ...", then "serving ... on SOCKET" once it answers
            if line.startswith("serving "):
                break
        else:
            pytest.fail(f"the server exited with {server.wait()} before serving")
        yield server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
