"""Starting `clipsearch web`: a socket on a free port, the resident Searcher warmed up, and uvicorn."""

from __future__ import annotations

import contextlib
import socket
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass

from clipsearch.config import DataDir
from clipsearch.errors import UsageError
from clipsearch.models.device import Device
from clipsearch.search.resident import ResidentSearcher
from clipsearch.web.app import Access, make_app
from clipsearch.web.library import Library
from clipsearch.web.security import is_loopback, new_token, own_names

DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class WebOptions:
    host: str = DEFAULT_HOST
    port: int = 0  # 0: a free one
    open_browser: bool = False
    device: Device = Device.auto


@dataclass(frozen=True)
class Started:
    url: str  # with the token, where there is one: shown once
    token: str | None
    host: str
    port: int


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
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"[{shown}]" if ":" in shown else shown


def run_web(data_dir: DataDir, options: WebOptions, on_started: Callable[[Started], None]) -> None:
    """Serve until interrupted. The model and the index are loaded before the address is announced."""
    import uvicorn

    resident = ResidentSearcher(data_dir, options.device)
    try:
        resident.warm_up()
        listener = listen(options.host, options.port)
        port = listener.getsockname()[1]
        token = None if is_loopback(options.host) else new_token()
        access = Access(own_names(options.host), token, any_address=options.host in ("0.0.0.0", "::"))
        app = make_app(Library(resident, data_dir), access)
        config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                                timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        base = f"http://{url_host(options.host)}:{port}/"
        started = Started(base + (f"?token={token}" if token else ""), token, options.host, port)
        threading.Thread(target=_announce, args=(server, started, options.open_browser, on_started),
                         daemon=True).start()
        with contextlib.closing(listener):
            server.run(sockets=[listener])
    finally:
        resident.close()


def _announce(server, started: Started, open_browser: bool, on_started: Callable[[Started], None]) -> None:
    """Say where the page is once uvicorn accepts connections (and open it, if asked)."""
    import time

    while not server.started and not server.should_exit:
        time.sleep(0.02)
    if server.should_exit:
        return
    on_started(started)
    if open_browser:
        webbrowser.open(started.url)
