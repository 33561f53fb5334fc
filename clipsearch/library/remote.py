"""Asking the resident server (`clipsearch serve`, or `clipsearch web`) over HTTP on its private Unix socket.

The socket lives in a folder only the user can enter, is owned by the user only, and the server checks each
caller's uid. A call first asks for the server's hello with a one-second deadline: a stopped, swamped or foreign
server costs a command a second at most, after which it answers by itself. Any answer that is not what the route
carries is treated the same way, so nothing a server sends can crash a command.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import stat
import warnings
from pathlib import Path
from typing import Any

from clipsearch.config import APP_NAME, DataDir
from clipsearch.errors import ClipsearchError, ExitCode
from clipsearch.library.wire import API_VERSION, MAX_ANSWER_BYTES, MAX_REQUEST_BYTES, WireError, dumps, loads

HELLO_TIMEOUT_S = 1.0  # connect, then hear the server's hello: else answer in this process
# A live server answers a text query in milliseconds; this bounds a server stopped after its hello, while leaving
# room for the first image query of a fresh server, which may load torch.
ANSWER_DEADLINE_S = 120.0


class ServerError(ClipsearchError):
    """An error the server reported for a request: the same message and exit code as an answer in-process."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(exit_code)


def socket_path(data_dir: DataDir) -> Path:
    """Where the server for this database listens: one socket per database, in a per-user folder.

    Unix socket paths are limited to about 100 bytes, so the database is named by a hash, not its path.
    """
    import platformdirs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset: nothing to act on
        base = Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))
    digest = hashlib.blake2b(os.fsencode(data_dir.root), digest_size=8).hexdigest()
    return base / f"{digest}.sock"


def private_folder(folder: Path, create: bool) -> bool:
    """Whether `folder` is ours alone (created that way if asked); anything else could be someone's trap."""
    if create:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700, parents=True)
    try:
        info = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077 == 0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self._path))

    def set_timeout(self, seconds: float) -> None:
        self.timeout = seconds
        if self.sock is not None:
            self.sock.settimeout(seconds)


def _ours(path: Path) -> bool:
    try:
        return private_folder(path.parent, create=False) and path.lstat().st_uid == os.getuid()
    except OSError:
        return False


def _read(connection: _UnixConnection, method: str, route: str, body: bytes | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, route, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read(MAX_ANSWER_BYTES + 1)
    if len(data) > MAX_ANSWER_BYTES:
        raise WireError("an answer too large")
    answer = loads(data)
    if response.status >= 400:
        error, code = answer.get("error"), answer.get("exit_code", ExitCode.ERROR)
        if response.status == 503 or not isinstance(error, str) or code not in set(ExitCode):
            raise WireError(f"status {response.status}")  # swamped, or not ours: answer in this process
        raise ServerError(error, code)
    return answer


def call(data_dir: DataDir, route: str, request: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The server's answer to one request (GET without one), or None when no server of ours answers in time.
    Raises ServerError when the server reports an error for the request, as an answer in-process would."""
    body = dumps(request) if request is not None else None
    path = socket_path(data_dir)
    if (body is not None and len(body) > MAX_REQUEST_BYTES) or not _ours(path):
        return None
    connection = _UnixConnection(path, HELLO_TIMEOUT_S)
    try:
        hello = _read(connection, "GET", "/v1/hello")
        if hello.get("version") != API_VERSION:
            return None  # another clipsearch's server: answer in this process
        if body is None:
            return hello
        connection.set_timeout(ANSWER_DEADLINE_S)
        return _read(connection, "POST", route, body)
    except (OSError, http.client.HTTPException, WireError):
        return None  # not there, stopped, swamped, gone or broken: answer in this process
    finally:
        connection.close()


def server_info(data_dir: DataDir) -> dict[str, Any] | None:
    """pid, uptime and requests answered of the server for this database, if one runs and answers in time."""
    return call(data_dir, "/v1/hello")
