"""`clipsearch serve`: query and similar use it when it runs, answer the same, and never depend on it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import IndexedLibrary, TinyModel, model_args, run_cli, running_server

from clipsearch.config import DataDir
from clipsearch.library.remote import server_info, socket_path

pytestmark = pytest.mark.slow  # the quick tier (-m "not slow") leaves these to CI

REPO = Path(__file__).resolve().parent.parent


def answered(db: Path) -> int:
    info = server_info(DataDir(db))
    assert info is not None
    return info["answered"]


def search(*args: object) -> list[dict]:
    result = run_cli(*args, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture()
def db(indexed_library: IndexedLibrary, tmp_path: Path) -> Path:
    copy = tmp_path / "db"
    shutil.copytree(indexed_library.db, copy)
    return copy


def test_queries_go_through_the_server_and_answer_the_same(db: Path, indexed_library: IndexedLibrary,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    photo = str(indexed_library.photos[5].path)
    direct_text = search("query", "a purple circle", "--db", db)
    direct_image = search("similar", photo, "--db", db, "-n", "5")
    with running_server(db):
        assert search("query", "a purple circle", "--db", db) == direct_text
        assert search("similar", photo, "--db", db, "-n", "5") == direct_image
        assert answered(db) == 2
        # Relative paths are the user's, not the server's: sent absolute, shown as typed.
        monkeypatch.chdir(Path(photo).parent)
        relative = search("similar", Path(photo).name, "--db", db, "-n", "5")
        assert [r["path"] for r in relative] == [r["path"] for r in direct_image]
        assert answered(db) == 3
        # Errors come back with the same message and exit code as a local search.
        empty = run_cli("query", " ", "--db", db)
        assert empty.exit_code == 2 and "the query is empty" in empty.stderr
        # Another model, or CLIPSEARCH_NO_SERVER, searches in-process.
        monkeypatch.setenv("CLIPSEARCH_NO_SERVER", "1")
        assert search("query", "a purple circle", "--db", db) == direct_text
        assert answered(db) == 3  # neither the refused empty query nor the in-process search counts


# Every kind of question a command asks, answered by the running server: the client process imports no torch.
_CLIENT = """
import json, sys
from clipsearch.cli import app
photo, db = sys.argv[1], sys.argv[2]
commands = [
    ["query", "a red circle", "--where", "-n", "2"],
    ["similar", photo, "-n", "3"],
    ["classify", photo, "--labels", "red circle,blue square,green triangle"],
    ["query", "a shape", "--after", "2019", "--camera", "canon", "-n", "3"],
    ["locate", "a red circle", photo, "--top", "1"],
    ["duplicates"],
]
for command in commands:
    try:
        app([*command, "--db", db, "-f", "json"])
    except SystemExit as done:
        assert done.code in (0, 1), (command, done.code)
heavy = sorted(m for m in ("torch", "open_clip", "transformers", "openvino") if m in sys.modules)
print(json.dumps(heavy), file=sys.stderr)
"""


def test_every_kind_of_question_is_answered_by_the_server_without_loading_a_model(
        db: Path, indexed_library: IndexedLibrary) -> None:
    photo = str(next(p.path for p in indexed_library.photos if p.path.suffix.lower() == ".jpg"))
    with running_server(db):
        # Once, so that the server has loaded what --where and locate need; the boxes come back with the results.
        where = search("query", "a red circle", "--where", "--db", db, "-n", "2")
        assert [len(result["box"]) for result in where] == [4, 4]
        before = answered(db)
        done = subprocess.run([sys.executable, "-c", _CLIENT, photo, str(db)], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stderr.strip().splitlines()[-1]) == []
        assert answered(db) == before + 6


def test_the_socket_is_private(db: Path) -> None:
    with running_server(db):
        path = socket_path(DataDir(db))
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        # A folder others could write to is not trusted: the client searches by itself instead.
        path.parent.chmod(0o777)
        try:
            search("query", "a red square", "--db", db)
        finally:
            path.parent.chmod(0o700)
        assert answered(db) == 0
        search("query", "a red square", "--db", db)
        assert answered(db) == 1


def test_the_server_sees_what_index_adds_while_it_runs(photo_library, test_model: TinyModel, tmp_path: Path) -> None:
    _root, photos = photo_library
    library = tmp_path / "library"
    library.mkdir()
    first = [p for p in photos if p.path.suffix.lower() == ".jpg"][:10]
    for photo in first:
        shutil.copy(photo.path, library / photo.path.name)
    db = tmp_path / "db"
    assert run_cli("index", library, "--db", db, *model_args(test_model)).exit_code == 0
    with running_server(db):
        assert len(search("query", "a shape", "--db", db, "-n", "100")) == 10
        more = [p for p in photos if p.path.suffix.lower() == ".jpg"][10:15]
        for photo in more:
            shutil.copy(photo.path, library / f"new-{photo.path.name}")
        assert run_cli("index", library, "--db", db).exit_code == 0
        found = search("query", "a shape", "--db", db, "-n", "100")
        assert len(found) == 15 and answered(db) == 2
        (library / first[0].path.name).unlink()
        assert run_cli("index", library, "--db", db).exit_code == 0
        assert len(search("query", "a shape", "--db", db, "-n", "100")) == 14


def test_stopping_removes_the_socket_and_a_dead_server_is_not_needed(db: Path) -> None:
    path = socket_path(DataDir(db))
    with running_server(db) as server:
        second = subprocess.run([sys.executable, "-m", "clipsearch", "serve", "--db", str(db)], cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "already running" in second.stderr
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    assert not path.exists()
    with running_server(db) as server:
        server.kill()  # no chance to clean up: the socket stays behind
        server.wait()
    assert path.exists()
    assert search("query", "a red square", "--db", db)  # answered in-process
    with running_server(db):  # and a new server replaces the dead one's socket
        search("query", "a red square", "--db", db)
        assert answered(db) == 1


def test_a_dangling_link_at_the_socket_path_does_not_stop_a_new_server(db: Path, tmp_path: Path) -> None:
    path = socket_path(DataDir(db))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.symlink_to(tmp_path / "nowhere")  # left by a crash, or planted: exists() would say no, bind() "in use"
    with running_server(db):
        assert path.is_socket() and not path.is_symlink()
        search("query", "a red square", "--db", db)
        assert answered(db) == 1


def test_status_shows_a_running_server(db: Path) -> None:
    assert json.loads(run_cli("status", "--json", "--db", db).stdout)["server"] is None
    with running_server(db) as server:
        report = json.loads(run_cli("status", "--json", "--db", db).stdout)
        assert report["server"]["pid"] == server.pid
        assert f"pid {server.pid}" in run_cli("status", "--db", db).stdout


def test_idle_timeout_ends_the_server(db: Path) -> None:
    with running_server(db, "--idle-timeout", "0.02") as server:  # 1.2 s
        assert server.wait(timeout=60) == 0
    assert not socket_path(DataDir(db)).exists()
    assert os.environ.get("XDG_RUNTIME_DIR") and str(socket_path(DataDir(db))).startswith(
        os.environ["XDG_RUNTIME_DIR"])
