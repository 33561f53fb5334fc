"""A database that no one may write to (a folder and catalogue made read-only, say an archive on a read-only
mount, or another user's shared database) answers every reading command, and writes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import REPO, TinyModel, model_args, run_cli, write_photos

NOBODY = 65534


def _as_nobody() -> None:
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _unprivileged() -> tuple[list[str], Callable[[], None] | None]:
    """How to run this interpreter without the right to write others' files: as uid 65534 when that user can run
    it, else (an interpreter under root's private home) as root without any capability, so that the files' own
    modes bind it as they bind anyone else."""
    if os.geteuid() != 0:
        return [], None
    try:
        if subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_as_nobody, capture_output=True).returncode == 0:
            return [], _as_nobody
    except PermissionError:
        pass
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs a user other than root that can run this interpreter, or setpriv")
    return [setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"], None


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder anyone may enter (pytest's own temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="clipsearch-read-only-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder)


def _freeze(db: Path) -> None:
    for path in [*db.rglob("*"), db]:
        if not path.is_symlink():
            path.chmod(0o555 if path.is_dir() else 0o444)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _close(got: object, wanted: object) -> bool:
    """Equal, numbers to 1e-4 (torch and the numpy query model differ in the last digits)."""
    if isinstance(wanted, float) and isinstance(got, (int, float)):
        return abs(got - wanted) <= 1e-4
    if isinstance(wanted, dict) and isinstance(got, dict):
        return got.keys() == wanted.keys() and all(_close(got[k], wanted[k]) for k in wanted)
    if isinstance(wanted, list) and isinstance(got, list):
        return len(got) == len(wanted) and all(_close(g, w) for g, w in zip(got, wanted))
    return got == wanted


@pytest.mark.parametrize("caches", ["present", pytest.param("deleted", marks=pytest.mark.slow)])
def test_a_read_only_database_answers_every_reading_command(shared: Path, test_model: TinyModel,
                                                            caches: str) -> None:
    photos, db = shared / "photos", shared / "db"
    written = write_photos(photos, 12, seed=16)
    photos.chmod(0o755)
    for path in written:
        path.chmod(0o644)
    assert run_cli("index", photos, "--db", db, *model_args(test_model)).exit_code == 0
    vocabulary = shared / "words.txt"
    vocabulary.write_text("[colour]\nred\ngreen\nblue\nyellow\n[shape]\ncircle\nsquare\ntriangle\n")
    assert run_cli("tag", "--vocabulary", vocabulary, "--db", db).exit_code == 0
    commands = [
        ["query", "a red circle", "-f", "json"],
        ["query", "a green square", "--tag", "green", "-f", "json"],
        ["similar", written[3], "-f", "json"],
        ["tags", "-f", "json"],
        ["classify", written[0], written[5], "--labels", "red,green,blue", "-f", "json"],
        ["classify", photos, "--labels", "circle,square,triangle", "-f", "json"],
        ["duplicates", "--similar", "-f", "json"],
    ]
    expected = []
    for command in commands:  # the first query also saves the vector index: it is present and current below
        done = run_cli(*command, "--db", db)
        assert done.exit_code == 0, (command, done.stderr)
        expected.append(json.loads(done.stdout))
    status = json.loads(run_cli("status", "--json", "--db", db).stdout)
    assert status["index"]["state"] == "current" and status["query_model"]["state"] == "ready"

    if caches == "deleted":  # what a reader would write again, had it the right: it answers all the same
        shutil.rmtree(db / "query-model")
        for name in ("query-model.json", "vectors.hnsw", "vectors.json"):
            (db / name).unlink(missing_ok=True)
    _freeze(db)
    before = _tree(db)
    home = shared / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    prefix, preexec = _unprivileged()
    environment = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": str(home), "LANG": "C.UTF-8",
                   "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
                   "XDG_CONFIG_HOME": str(home / "config"), "XDG_RUNTIME_DIR": str(home / "run"),
                   "HF_HOME": str(home / "hf"), "HF_HUB_OFFLINE": "1", "CLIPSEARCH_ENGINE": "torch"}

    def run(*command: object) -> subprocess.CompletedProcess:
        done = subprocess.run([*prefix, sys.executable, "-m", "clipsearch", *map(str, command), "--db", str(db)],
                              cwd=home, env=environment, preexec_fn=preexec, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (command, done.stderr)
        assert not {"error", "warning", "writing"} & set(done.stderr.lower().split()), (command, done.stderr)
        return done

    for command, wanted in zip(commands, expected):
        got = json.loads(run(*command).stdout)
        assert _close(got, wanted), (command, got, wanted)
    frozen = json.loads(run("status", "--json").stdout)
    for key in ("images", "roots", "model_identity", "regions"):
        assert frozen[key] == status[key], key
    if caches == "present":
        assert frozen["index"] == status["index"] and frozen["query_model"] == status["query_model"]
        assert "queries skip torch" in run("status").stdout
    else:
        assert frozen["index"]["state"] == "missing" and frozen["query_model"]["state"] == "missing"
    assert _tree(db) == before  # nothing written, nothing left beside the catalogue
