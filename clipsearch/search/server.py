"""`clipsearch serve`: one process keeps the model and the index in memory and answers on a local socket.

`clipsearch query` and `similar` try the socket first and fall back to searching in-process
(clipsearch.search.router), so the server is never required, only faster.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clipsearch.config import DataDir
from clipsearch.errors import ClipsearchError, ExitCode, UsageError
from clipsearch.models.device import Device
from clipsearch.models.identity import MODEL_SETTING, ModelIdentity
from clipsearch.search.client import server_info
from clipsearch.search.protocol import PROTOCOL_VERSION, private_folder, read_all, socket_path
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.searcher import Searcher


@dataclass(frozen=True)
class ServeOptions:
    device: Device = Device.auto
    idle_timeout_s: float | None = None  # exit after this long without a request


class SearchServer:
    """Answers requests one at a time with one Searcher, kept current with the catalogue between requests."""

    def __init__(self, data_dir: DataDir, options: ServeOptions) -> None:
        self.data_dir = data_dir
        self.options = options
        self.path = socket_path(data_dir)
        self.started = time.time()
        self.answered = 0
        self._searcher: Searcher | None = None
        self._catalog_file: tuple[int, int] | None = None

    def _open(self) -> Searcher:
        """A Searcher for the database as it is now: reopened when the catalogue file or its model changes."""
        identity = self._catalog_identity()
        searcher = self._searcher
        if searcher is not None and identity == self._catalog_file:
            stored = searcher.catalog.get_json(MODEL_SETTING)
            if stored and ModelIdentity.from_dict(stored).same_model(searcher.identity):
                searcher.index.catch_up(searcher.catalog)
                return searcher
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
            queries = request["queries"]
            if request["kind"] not in (QueryKind.text.value, QueryKind.image.value) or not isinstance(queries, list):
                raise UsageError(f"the server does not answer {request['kind']!r} requests")
            results = searcher.search(QueryKind(request["kind"]), queries, options)
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
        if not private_folder(self.path.parent, create=True):
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
            request = json.loads(read_all(connection))
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
