"""A server on the database's socket that answers nonsense never crashes a command: it answers by itself."""

from __future__ import annotations

import json
import shutil
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from helpers import IndexedLibrary, run_cli

from clipsearch.config import DataDir
from clipsearch.library.remote import private_folder, socket_path

HELLO = json.dumps({"version": 3, "pid": 1, "answered": 0}).encode()
SHAPES = [
    b"not json at all",
    b"[1, 2, 3]",
    b'{"results": "many"}',
    b'{"results": [{"rank": 1}]}',
    b'{"results": [{"rank": "one", "score": 1, "path": 7, "width": 1, "height": 1, "taken_at": null}]}',
    b'{"results": [], "missing": "none"}',
    b'{"error": 42, "exit_code": "x"}',
]


@contextmanager
def fake_server(db: Path, answer: bytes, status: int = 200) -> Iterator[None]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: bytes, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(HELLO, 200)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send(answer, status)

        def log_message(self, *args: object) -> None:
            pass

        def address_string(self) -> str:
            return "local"

    path = socket_path(DataDir(db))
    assert private_folder(path.parent, create=True)
    path.unlink(missing_ok=True)
    server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
    path.chmod(0o600)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("answer", SHAPES, ids=range(len(SHAPES)))
def test_a_malformed_answer_is_ignored_and_the_command_answers_by_itself(indexed_library: IndexedLibrary,
                                                                         tmp_path: Path, answer: bytes) -> None:
    db = Path(shutil.copytree(indexed_library.db, tmp_path / "db"))
    direct = run_cli("query", "a red circle", "--db", db, "-f", "json")
    assert direct.exit_code == 0, direct.stderr
    for status in (200, 400):
        with fake_server(db, answer, status):
            faked = run_cli("query", "a red circle", "--db", db, "-f", "json")
        assert faked.exit_code == 0, faked.stderr
        assert json.loads(faked.stdout) == json.loads(direct.stdout)
        assert "internal error" not in faked.stderr
