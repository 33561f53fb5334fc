"""The server's socket and wire format, shared by `clipsearch serve` and the commands that ask it.

The socket lives in a folder only the user can enter and is itself owned by the user only; the server
also checks each caller's uid. On each connection the server first says hello (one JSON line with its
protocol version), then reads one JSON request (ended by the client closing its side) and sends one
JSON answer. A client that hears no hello within a second searches by itself, so a stopped or
swamped server costs it a second at most. JSON's \\udcXX escapes carry file names that are not valid
UTF-8 through unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import time
import warnings
from pathlib import Path

from clipsearch.config import APP_NAME, DataDir
from clipsearch.errors import ClipsearchError, ExitCode

PROTOCOL_VERSION = 2
HELLO_TIMEOUT_S = 1.0  # connect, then hear the server's hello: else search in-process
REQUEST_DEADLINE_S = 10.0  # for a client to send its whole request
MAX_REQUEST_BYTES = 4 << 20  # larger requests (thousands of queries) are searched in-process


class ProtocolError(Exception):
    """The other side broke the protocol: too slow, too large, or not JSON."""


class ServerError(ClipsearchError):
    """An error the server reported for a request: the same message and exit code as a local search."""

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


def receive(connection: socket.socket, limit: int, deadline: float, *, until_newline: bool = False) -> bytes:
    """Read until the peer closes its side (or, if asked, to the first newline), within `limit` bytes and by the
    monotonic `deadline`; ProtocolError otherwise. One byte every few seconds does not extend the deadline."""
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProtocolError("timed out")
        connection.settimeout(remaining)
        try:
            chunk = connection.recv(min(1 << 16, limit + 1 - size))
        except TimeoutError:
            raise ProtocolError("timed out") from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"more than {limit} bytes")
        if until_newline and b"\n" in chunk:
            return b"".join(chunks)


def decode(message: bytes) -> dict:
    """A JSON object, or ProtocolError: whatever the bytes are (deep nesting included), never anything else."""
    try:
        value = json.loads(message)
    except (ValueError, RecursionError) as error:
        raise ProtocolError("not JSON") from error
    if not isinstance(value, dict):
        raise ProtocolError("not a JSON object")
    return value
