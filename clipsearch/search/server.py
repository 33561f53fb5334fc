"""`clipsearch serve`: one process keeps the model and the index in memory and answers on a local socket.

`clipsearch query` and `similar` try the socket first and fall back to searching in-process
(clipsearch.search.router), so the server is never required, only faster.

Each connection is handled in a thread of its own, with a deadline and a size cap on its request,
so a slow, silent or hostile client costs the others nothing; the searching itself is done one
request at a time (clipsearch.search.resident). Any request, however malformed, gets an error answer:
nothing a client sends can stop the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clipsearch.config import DataDir
from clipsearch.errors import ClipsearchError, ExitCode, UsageError
from clipsearch.models.device import Device
from clipsearch.search.client import server_info
from clipsearch.search.protocol import (
    MAX_REQUEST_BYTES,
    PROTOCOL_VERSION,
    REQUEST_DEADLINE_S,
    ProtocolError,
    decode,
    private_folder,
    receive,
    socket_path,
)
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.resident import ResidentSearcher

MAX_CONNECTIONS = 16  # beyond this, a new connection is closed at once and its client searches in-process
_SEND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ServeOptions:
    device: Device = Device.auto
    idle_timeout_s: float | None = None  # exit after this long without a request


class SearchServer:
    """Answers requests with one Searcher, kept current with the catalogue between requests."""

    def __init__(self, data_dir: DataDir, options: ServeOptions) -> None:
        self.data_dir = data_dir
        self.options = options
        self.path = socket_path(data_dir)
        self.started = time.time()
        self.answered = 0
        self.resident = ResidentSearcher(data_dir, options.device)
        self._connections_lock = threading.Lock()
        self._connections = 0  # being handled now
        self._last_request = time.monotonic()

    def warm_up(self) -> None:
        self.resident.warm_up()

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The answer to one request: results, or an error with the exit code a local search would give."""
        base = {"version": PROTOCOL_VERSION}
        if request.get("version") != PROTOCOL_VERSION:
            return {**base, "error": "this clipsearch and the running server are different versions: restart "
                                     "`clipsearch serve`", "exit_code": ExitCode.ERROR}
        if request.get("kind") == "info":
            return {**base, "pid": os.getpid(), "uptime_s": time.time() - self.started, "answered": self.answered}
        try:
            options = QueryOptions(**request["options"])
            queries = request["queries"]
            if request["kind"] not in (QueryKind.text.value, QueryKind.image.value) or not isinstance(queries, list) \
                    or not all(isinstance(query, str) for query in queries):
                raise UsageError(f"the server does not answer {request['kind']!r} requests")
            with self.resident.current() as searcher:
                answer = searcher.search(QueryKind(request["kind"]), queries, options)
                self.answered += 1
            return {**base, "results": [asdict(r) for r in answer.results], "missing": answer.missing}
        except ClipsearchError as error:
            return {**base, "error": str(error), "exit_code": int(error.exit_code)}
        except (KeyError, TypeError, ValueError) as error:
            return {**base, "error": f"a malformed request ({error})", "exit_code": ExitCode.ERROR}
        except Exception as error:  # one failed request must not take the server down with it
            return {**base, "error": f"internal error: {type(error).__name__}: {error}", "exit_code": ExitCode.ERROR}

    def serve(self, on_ready: Callable[[Path], None] = lambda path: None,
              on_idle: Callable[[float], None] = lambda minutes: None) -> None:
        """Listen until interrupted (or idle too long); the socket is removed on the way out."""
        if not private_folder(self.path.parent, create=True):
            raise UsageError(f"{self.path.parent} is not a folder only you can use: remove it, or set XDG_RUNTIME_DIR")
        listener = self._listen()
        workers = ThreadPoolExecutor(MAX_CONNECTIONS, thread_name_prefix="client")
        try:
            self.warm_up()
            on_ready(self.path)
            self._accept_until_idle(listener, workers, on_idle)
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            workers.shutdown(wait=False, cancel_futures=True)
            self.resident.close()

    def _accept_until_idle(self, listener: socket.socket, workers: ThreadPoolExecutor,
                           on_idle: Callable[[float], None]) -> None:
        idle_limit = self.options.idle_timeout_s
        listener.settimeout(1.0)
        while True:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                idle = time.monotonic() - self._last_request
                if idle_limit is not None and idle >= idle_limit and not self._connections:
                    on_idle(idle / 60)
                    return
                continue
            with self._connections_lock:
                if self._connections >= MAX_CONNECTIONS:
                    connection.close()  # swamped: that client searches in-process
                    continue
                self._connections += 1
            self._last_request = time.monotonic()
            workers.submit(self._handle, connection)

    def _handle(self, connection: socket.socket) -> None:
        try:
            with connection:
                if _peer_uid(connection) not in (None, os.getuid()):
                    return
                connection.settimeout(_SEND_TIMEOUT_S)
                connection.sendall(json.dumps({"version": PROTOCOL_VERSION, "pid": os.getpid()}).encode() + b"\n")
                try:
                    request = decode(receive(connection, MAX_REQUEST_BYTES, time.monotonic() + REQUEST_DEADLINE_S))
                    answer = self.answer(request)
                except ProtocolError as error:
                    answer = {"version": PROTOCOL_VERSION, "error": f"a malformed request ({error})",
                              "exit_code": ExitCode.ERROR}
                connection.settimeout(_SEND_TIMEOUT_S)
                connection.sendall(json.dumps(answer).encode())
        except Exception:  # the client went away or misbehaved: it alone is affected
            pass
        finally:
            self._last_request = time.monotonic()
            with self._connections_lock:
                self._connections -= 1

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
        listener.listen(64)
        return listener


def _peer_uid(connection: socket.socket) -> int | None:
    """The caller's uid, where the system tells (Linux); the socket's permissions already keep others out."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    credentials = connection.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    return uid
