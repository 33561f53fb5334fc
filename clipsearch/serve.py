"""Resident mode: one process holds the model and the index, and answers queries on a local socket.

`clipsearch query` and `similar` try the socket first and fall back to searching in-process,
so the server is never required, only faster. The socket lives in a folder only the user can
enter and is itself owned by the user only; the server also checks each caller's uid.

The protocol is one JSON request and one JSON answer per connection. JSON's \\udcXX escapes
carry file names that are not valid UTF-8 through unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clipsearch.config import DataDir
from clipsearch.errors import ClipsearchError, ExitCode, UsageError
from clipsearch.results import QueryOptions, SearchResult

PROTOCOL_VERSION = 1
_CONNECT_TIMEOUT_S = 1.0
_ANSWER_TIMEOUT_S = 300.0  # an image query may have to load torch first


class ServerError(ClipsearchError):
    """An error the server reported for a request: the same message and exit code as a local search."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(exit_code)


def socket_path(data_dir: DataDir) -> Path:
    """Where the server for this database listens: one socket per database, in a per-user folder.

    Unix socket paths are limited to about 100 bytes, so the database is named by a hash, not its path.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "clipsearch" if runtime and Path(runtime).is_dir() else (
        Path(tempfile.gettempdir()) / f"clipsearch-{os.getuid()}")
    digest = hashlib.blake2b(os.fsencode(data_dir.root), digest_size=8).hexdigest()
    return base / f"{digest}.sock"


def _private_folder(folder: Path, create: bool) -> bool:
    """Whether `folder` is ours alone (created that way if asked); anything else could be someone's trap."""
    if create:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700, parents=True)
    try:
        info = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077 == 0


# ---------------------------------------------------------------------------------------------- client


def _exchange(path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """Send one request; None if no server of ours answers there."""
    if not path.exists() or not _private_folder(path.parent, create=False) or path.lstat().st_uid != os.getuid():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(_CONNECT_TIMEOUT_S)
        try:
            connection.connect(str(path))
        except OSError:
            return None  # a socket left behind by a server that died: search in-process
        connection.settimeout(_ANSWER_TIMEOUT_S)
        connection.sendall(json.dumps(request).encode() + b"\n")
        connection.shutdown(socket.SHUT_WR)
        answer = _read_all(connection)
    try:
        return json.loads(answer)
    except ValueError:
        return None


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def ask(data_dir: DataDir, kind: str, queries: list[str], options: QueryOptions) -> list[SearchResult] | None:
    """The server's answer to these queries, or None if no server runs for this database."""
    if kind == "image":  # the server has another working directory: send paths it can open, show the user's own
        sent = [os.path.abspath(q) for q in queries]
        shown = dict(zip(sent, queries))
    else:
        sent, shown = queries, {}
    within = os.path.abspath(options.within) if options.within else None
    request = {"version": PROTOCOL_VERSION, "kind": kind, "queries": sent,
               "options": asdict(QueryOptions(options.limit, options.min_score, within, options.include_self))}
    try:
        answer = _exchange(socket_path(data_dir), request)
    except OSError:
        return None
    if answer is None or answer.get("version") != PROTOCOL_VERSION:
        return None
    if "error" in answer:
        raise ServerError(answer["error"], answer.get("exit_code", ExitCode.ERROR))
    results = [SearchResult(**fields) for fields in answer["results"]]
    return [SearchResult(**{**asdict(r), "query": shown.get(r.query, r.query)}) for r in results] if shown else results


def server_info(data_dir: DataDir) -> dict[str, Any] | None:
    """pid and uptime of the server for this database, if one runs."""
    try:
        answer = _exchange(socket_path(data_dir), {"version": PROTOCOL_VERSION, "kind": "info"})
    except OSError:
        return None
    return answer if answer and answer.get("version") == PROTOCOL_VERSION else None


# ---------------------------------------------------------------------------------------------- server


@dataclass(frozen=True)
class ServeOptions:
    device: str = "auto"
    idle_timeout_s: float | None = None  # exit after this long without a request


class SearchServer:
    """Answers requests one at a time with one Searcher, kept current with the catalogue between requests."""

    def __init__(self, data_dir: DataDir, options: ServeOptions) -> None:
        self.data_dir = data_dir
        self.options = options
        self.path = socket_path(data_dir)
        self.started = time.time()
        self.answered = 0
        self._searcher: Any = None
        self._catalog_file: tuple[int, int] | None = None

    def _open(self) -> Any:
        """A Searcher for the database as it is now: reopened when the catalogue file or its model changes."""
        from clipsearch.models import MODEL_SETTING, ModelIdentity

        identity = self._catalog_identity()
        searcher = self._searcher
        if searcher is not None and identity == self._catalog_file:
            stored = searcher.catalog.get_json(MODEL_SETTING)
            if stored and ModelIdentity.from_dict(stored).same_model(searcher.identity):
                searcher.index.catch_up(searcher.catalog)
                return searcher
        from clipsearch.search import Searcher

        if searcher is not None:
            searcher.close()
            self._searcher = None
        self._searcher = Searcher(self.data_dir, device=self.options.device)
        self._catalog_file = identity
        return self._searcher

    def _catalog_identity(self) -> tuple[int, int] | None:
        try:
            info = self.data_dir.catalog.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def warm_up(self) -> None:
        """Load everything a query needs now, so the first user does not wait for it."""
        searcher = self._open()
        searcher.index  # noqa: B018 (first, so that the model is kept: see Searcher._make_room_for_the_index)
        searcher.texts(["a photo"], QueryOptions(limit=1))

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        base = {"version": PROTOCOL_VERSION}
        if request.get("version") != PROTOCOL_VERSION:
            return {**base, "error": "this clipsearch and the running server are different versions: restart "
                                     "`clipsearch serve`", "exit_code": ExitCode.ERROR}
        if request.get("kind") == "info":
            return {**base, "pid": os.getpid(), "uptime_s": time.time() - self.started, "answered": self.answered}
        try:
            searcher = self._open()
            options = QueryOptions(**request["options"])
            queries, kind = request["queries"], request["kind"]
            if kind not in ("text", "image") or not isinstance(queries, list):
                raise UsageError(f"the server does not answer {kind!r} requests")
            results = searcher.texts(queries, options) if kind == "text" else searcher.images(queries, options)
            self.answered += 1
            return {**base, "results": [asdict(r) for r in results]}
        except ClipsearchError as error:
            return {**base, "error": str(error), "exit_code": int(error.exit_code)}
        except (KeyError, TypeError, ValueError) as error:
            return {**base, "error": f"a malformed request ({error})", "exit_code": ExitCode.ERROR}
        except Exception as error:  # one failed request must not take the server down with it
            return {**base, "error": f"internal error: {type(error).__name__}: {error}", "exit_code": ExitCode.ERROR}

    def serve(self, on_ready: Callable[[Path], None] = lambda path: None) -> None:
        """Listen until interrupted (or idle too long); the socket is removed on the way out."""
        if not _private_folder(self.path.parent, create=True):
            raise UsageError(f"{self.path.parent} is not a folder only you can use: remove it, or set XDG_RUNTIME_DIR")
        listener = self._listen()
        try:
            self.warm_up()
            on_ready(self.path)
            listener.settimeout(self.options.idle_timeout_s)
            while True:
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    return  # idle for long enough
                with connection:
                    self._handle(connection)
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            if self._searcher is not None:
                self._searcher.close()

    def _listen(self) -> socket.socket:
        if self.path.exists():
            if server_info(self.data_dir) is not None:
                raise UsageError(f"a server for {self.data_dir.root} is already running (socket {self.path})")
            self.path.unlink()  # left behind by a server that did not exit cleanly
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # the socket is created rw for the user only, with no window in between
        try:
            listener.bind(str(self.path))
        except OSError as error:
            listener.close()
            raise UsageError(f"cannot listen on {self.path}: {error.strerror or error}") from error
        finally:
            os.umask(previous)
        listener.listen(16)
        return listener

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(10.0)  # a client that connects and says nothing must not block everyone else
        try:
            if _peer_uid(connection) not in (None, os.getuid()):
                return
            request = json.loads(_read_all(connection))
            answer = self.answer(request) if isinstance(request, dict) else {
                "version": PROTOCOL_VERSION, "error": "a malformed request", "exit_code": ExitCode.ERROR}
            connection.sendall(json.dumps(answer).encode())
        except (OSError, ValueError):
            return  # the client went away or sent garbage: it alone is affected


def _peer_uid(connection: socket.socket) -> int | None:
    """The caller's uid, where the system tells (Linux); the socket's permissions already keep others out."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    credentials = connection.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    return uid
