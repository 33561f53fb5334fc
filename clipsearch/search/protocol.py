"""The server's socket and wire format, shared by `clipsearch serve` and the commands that ask it.

The socket lives in a folder only the user can enter and is itself owned by the user only; the server
also checks each caller's uid. The protocol is one JSON request and one JSON answer per connection.
JSON's \\udcXX escapes carry file names that are not valid UTF-8 through unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import warnings
from pathlib import Path

from clipsearch.config import APP_NAME, DataDir
from clipsearch.errors import ClipsearchError, ExitCode

PROTOCOL_VERSION = 1


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




def read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)
