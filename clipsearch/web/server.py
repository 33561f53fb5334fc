"""The one resident server: `clipsearch serve`, and `clipsearch web`, which is the same server with the page.

One process holds one LocalLibrary (the model and the index, loaded once) and answers, with uvicorn:
- the API (clipsearch.web.api) on the database's private Unix socket, always: every command and `Library` that
  uses the database's own model asks it there;
- the page (clipsearch.web.app) on TCP, only when `web` asks for it.
Two uvicorn servers share one event loop, so the API can never be reached over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from clipsearch.config import DataDir
from clipsearch.errors import UsageError
from clipsearch.library.local import LocalLibrary
from clipsearch.library.remote import private_folder, server_info, socket_path
from clipsearch.models.device import Device
from clipsearch.models.identity import ModelChoice

DEFAULT_HOST = "127.0.0.1"
MAX_CONNECTIONS = 16  # requests at once on the socket: beyond, a new one gets 503 and its command answers in-process
KEEP_ALIVE_S = 5  # an idle connection between requests is closed after this long
HEAD_TIMEOUT_S = 5.0  # a connection that has not sent a complete request head in this long is closed
PAGE_CONNECTIONS = 256  # open connections kept on the page's port (see _guarded_protocol)
SOCKET_CONNECTIONS = 64  # and on the socket
FILES_KEPT_FREE = 128  # open files left for the database, the model, the photos served
REPEAT_LOG_S = 5.0  # one log message is shown at most once this often (see RepeatFilter)


@dataclass(frozen=True)
class PageOptions:
    host: str = DEFAULT_HOST
    port: int = 0  # 0: a free one
    open_browser: bool = False


@dataclass(frozen=True)
class ServeOptions:
    device: Device = Device.auto
    idle_timeout_s: float | None = None  # exit after this long without a request
    page: PageOptions | None = None  # `clipsearch web`: also the page, on TCP


@dataclass(frozen=True)
class Started:
    socket: Path | None  # None: the page alone (see `unshared`)
    url: str | None = None  # the page's, with the token where there is one: shown once
    token: str | None = None
    unshared: str | None = None  # why the page does not answer the commands too


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except (socket.gaierror, UnicodeError) as error:
        listener.close()
        raise UsageError(f"--host {host}: not an address of this machine ({error})") from error
    except OSError as error:
        listener.close()
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    listener.listen(128)
    return listener


def url_host(host: str) -> str:
    """The address a printed URL names: the host itself, or for every address (0.0.0.0, ::) this machine's
    address on its network (loopback when it has none), which the Host check lets in."""
    from clipsearch.web.security import is_any_address, lan_address

    shown = host
    if is_any_address(host):
        ipv6 = ":" in host
        shown = lan_address(socket.AF_INET6 if ipv6 else socket.AF_INET) or ("::1" if ipv6 else "127.0.0.1")
    return f"[{shown}]" if ":" in shown else shown


def _listen_privately(data_dir: DataDir) -> tuple[socket.socket, Path]:
    path = socket_path(data_dir)
    if not private_folder(path.parent, create=True):
        raise UsageError(f"{path.parent} is not a folder only you can use: remove it, or set XDG_RUNTIME_DIR")
    if os.path.lexists(path):
        if server_info(data_dir) is not None:
            raise UsageError(f"a server for {data_dir.root} is already running (socket {path})")
        path.unlink()  # left behind by a server that did not exit cleanly
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # the socket is created rw for the user only, with no window in between
    try:
        listener.bind(str(path))
    except OSError as error:
        listener.close()
        raise UsageError(f"cannot listen on {path}: {error.strerror or error}") from error
    finally:
        os.umask(previous)
    listener.listen(64)
    return listener, path


def _peer_uid(connection: socket.socket) -> int | None:
    """The caller's uid, where the system tells (Linux); the socket's permissions already keep others out."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    credentials = connection.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    return struct.unpack("3i", credentials)[1]


def _guarded_protocol(max_connections: int, owner_only: bool = False, busy_limit: int | None = None):
    """uvicorn's HTTP protocol, with what it lacks against connections that are opened and then held:
    - a header timeout: a connection that has not sent a complete request head HEAD_TIMEOUT_S after it opened (or
      after the first byte of its next request) is closed; between requests uvicorn's keep-alive timeout holds;
    - a cap on open connections: beyond max_connections, the one that has waited longest for its request head is
      closed (so a client that asks promptly is answered while idle ones are held), or, when every connection has
      a request in progress, the new one;
    - owner_only: a connection from another user is closed at once (the Unix socket's permissions already keep
      others out);
    - busy_limit: beyond that many requests in progress a new one gets 503 (uvicorn's limit_concurrency counts
      idle connections too, which would let held connections turn every command away)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _waiting_since: float | None = None  # when it began waiting for a request head, while it is

        def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
            super().connection_made(transport)
            if owner_only:
                connection = transport.get_extra_info("socket")
                if connection is None or _peer_uid(connection) not in (None, os.getuid()):
                    transport.close()
                    return
            self._wait_for_head()
            if len(self.connections) > max_connections:
                waiting = [c for c in self.connections if c is not self and c._waiting_since is not None
                           and not c.transport.is_closing()]
                victim = min(waiting, key=lambda c: c._waiting_since) if waiting else self
                victim._close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # part of a request head, or none yet
                self._wait_for_head()
            else:
                self._stop_waiting()

        def handle_events(self) -> None:
            if busy_limit is not None:  # 0: uvicorn's own check then answers 503
                self.limit_concurrency = None if len(self.tasks) < busy_limit else 0
            super().handle_events()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _wait_for_head(self) -> None:
            if self._head_timer is None and not self.transport.is_closing():
                self._waiting_since = self.loop.time()
                self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timeout)

        def _stop_waiting(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self._waiting_since = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE:
                self._close()

        def _close(self) -> None:
            self._stop_waiting()
            if not self.transport.is_closing():
                self.transport.close()

    return Guarded


def connection_caps() -> tuple[int, int]:
    """The most connections the page and the socket each keep open: PAGE_CONNECTIONS and SOCKET_CONNECTIONS, or
    fewer where the open-file limit (first raised to its hard limit) would not hold both with files to spare."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return PAGE_CONNECTIONS, SOCKET_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if files == resource.RLIM_INFINITY or files - FILES_KEPT_FREE >= PAGE_CONNECTIONS + SOCKET_CONNECTIONS:
        return PAGE_CONNECTIONS, SOCKET_CONNECTIONS
    room = max(files - FILES_KEPT_FREE, 16)
    return room * 3 // 4, room // 4


class RepeatFilter(logging.Filter):
    """Lets one message (by its first line) through at most once every `interval_s`, saying how many like it were
    left out: a server out of file descriptors logs each failed accept, and must not fill a disk with it."""

    def __init__(self, interval_s: float = REPEAT_LOG_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}  # first line -> when last shown, how many left out since
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        key = f"{record.name}:{record.levelno}:{message.partition(chr(10))[0][:200]}"
        now = time.monotonic()
        with self._lock:
            shown, left_out = self._last.get(key, (None, 0))
            if shown is not None and now - shown < self.interval_s:
                self._last[key] = (shown, left_out + 1)
                return False
            if len(self._last) >= 1000:  # many different messages: forget the old ones
                self._last = {k: v for k, v in self._last.items() if now - v[0] < self.interval_s}
            self._last[key] = (now, 0)
        if left_out and shown is not None:
            record.msg = f"{message}\n({left_out} more like this in the {now - shown:.0f} s before, not shown)"
            record.args = ()
        return True


def limit_repeated_logs() -> None:
    """RepeatFilter on the loggers an overloaded server writes to: asyncio's (a failed accept) and uvicorn's."""
    for name in ("asyncio", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter())


def _uvicorn_server(app, **settings):  # type: ignore[no-untyped-def]
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, lifespan="off",
                            timeout_graceful_shutdown=2, timeout_keep_alive=KEEP_ALIVE_S, **settings)
    return uvicorn.Server(config)


def run_server(data_dir: DataDir, options: ServeOptions, on_started: Callable[[Started], None],
               on_idle: Callable[[float], None] = lambda minutes: None) -> int:
    """Serve until interrupted (or idle too long); the socket is removed on the way out. Returns the number of
    requests answered. The model and the index load before anything is announced."""
    limit_repeated_logs()
    page_cap, socket_cap = connection_caps()
    library = LocalLibrary(data_dir, ModelChoice(device=options.device), resident=True)
    path: Path | None = None
    try:
        library.warm_up()
        servers, path, unshared = _api(library, data_dir, required=options.page is None, cap=socket_cap)
        started = Started(path, unshared=unshared)
        if options.page is not None:
            page_server, page_socket, url, token = _page(library, data_dir, options.page, cap=page_cap)
            servers.append((page_server, [page_socket]))
            started = replace(started, url=url, token=token)
        with contextlib.ExitStack() as sockets:
            for _, listeners in servers:
                for listener in listeners:
                    sockets.enter_context(contextlib.closing(listener))
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, or SIGTERM as the CLI turns it: a clean stop
                asyncio.run(_serve_all(servers, library, options, started, on_started, on_idle))
        return library.answered
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
        library.close()


def _api(library: LocalLibrary, data_dir: DataDir, required: bool, cap: int):  # type: ignore[no-untyped-def]
    """The API's server on the private socket, or, for `web` beside a running `serve` (or without a private
    runtime folder), none and why: the page still works with a model of its own, and the commands keep asking
    the server that was there first, or answer by themselves."""
    from clipsearch.web.api import make_api

    try:
        private, path = _listen_privately(data_dir)
    except UsageError as error:
        if required:
            raise
        return [], None, str(error)
    protocol = _guarded_protocol(cap, owner_only=True, busy_limit=MAX_CONNECTIONS)
    server = _uvicorn_server(make_api(library), http=protocol)
    return [(server, [private])], path, None


def _page(library: LocalLibrary, data_dir: DataDir, page: PageOptions, cap: int):  # type: ignore[no-untyped-def]
    from clipsearch.web.app import Access, make_app
    from clipsearch.web.page_state import PageState
    from clipsearch.web.security import checked_host, is_any_address, new_token, own_names

    host = checked_host(page.host)
    listener = listen(host, page.port)
    port = listener.getsockname()[1]
    # On loopback too: every user of this machine can reach 127.0.0.1, and the photos are the owner's alone.
    token = new_token()
    shown = url_host(host)
    access = Access(own_names(host, shown.strip("[]")), token, any_address=is_any_address(host))
    server = _uvicorn_server(make_app(PageState(library, data_dir), access), http=_guarded_protocol(cap))
    url = f"http://{shown}:{port}/?token={token}"
    return server, listener, url, token


async def _serve_all(servers, library: LocalLibrary, options: ServeOptions, started: Started,  # type: ignore
                     on_started: Callable[[Started], None], on_idle: Callable[[float], None]) -> None:
    tasks = [asyncio.create_task(server.serve(sockets=listeners)) for server, listeners in servers]
    everyone = [server for server, _ in servers]
    while not all(server.started for server in everyone):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.02)
    else:
        on_started(started)
        if options.page is not None and options.page.open_browser and started.url:
            webbrowser.open(started.url)
    await _watch(everyone, tasks, library, options.idle_timeout_s, on_idle)
    await asyncio.gather(*tasks, return_exceptions=True)


async def _watch(servers, tasks, library: LocalLibrary, idle_limit: float | None,  # type: ignore[no-untyped-def]
                 on_idle: Callable[[float], None]) -> None:
    """Stop every server when one stops (a signal reaches only one of them) or when idle too long."""
    answered, last_request = library.answered, time.monotonic()
    while not any(server.should_exit for server in servers) and not any(task.done() for task in tasks):
        await asyncio.sleep(0.25)
        if library.answered != answered:
            answered, last_request = library.answered, time.monotonic()
        idle = time.monotonic() - last_request
        if idle_limit is not None and idle >= idle_limit:
            on_idle(idle / 60)
            break
    for server in servers:
        server.should_exit = True
