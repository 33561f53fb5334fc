"""`clipsearch web`: the local web page."""

from __future__ import annotations

import contextlib
import signal
from typing import Annotated

import typer

from clipsearch.cli.app import blas_single_threaded, command, say
from clipsearch.cli.options import DbOption, DeviceOption, TracebackOption, data_dir
from clipsearch.models.device import Device


@command(epilog="Examples:  clipsearch web --open  ·  clipsearch web --port 8765  ·  "
                    "clipsearch web --host 192.168.1.20   (other machines: asks for a token)")
def web(
    db: DbOption = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (default: a free "
                                                                       "one).")] = 0,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but loopback lets other "
                                                     "machines in (with the token).")] = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
    device: DeviceOption = Device.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Search and browse the database in a web browser, on this machine.

    Type a description, or drop, paste or pick a picture; click a result to see it large, and "more like this"
    to find its look-alikes. The page holds the model and index in memory, as `serve` does. Stop it with Ctrl-C.
    """
    blas_single_threaded()
    from clipsearch.web.security import checked_host, is_loopback
    from clipsearch.web.server import PageOptions, ServeOptions, Started, run_server

    folder = data_dir(db)
    host = checked_host(host)  # '' or '0' would bind every address under another name: refused, before loading
    if not is_loopback(host):
        say(f"warning: --host {host} lets other machines reach this page; they need the token printed below")

    def started(where: Started) -> None:
        say(f"serving {folder.root} at {where.url} (Ctrl-C to stop)")
        if where.unshared:
            say(f"note: the page holds a model of its own, the commands do not use it: {where.unshared}")
        if where.token:
            say("the token is shown only this once: the link above carries it")

    signal.signal(signal.SIGTERM, _stop)
    say(f"loading {folder.root}")
    with contextlib.suppress(KeyboardInterrupt):
        run_server(folder, ServeOptions(device, page=PageOptions(host, port, open_browser)), started)
    say("stopped")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
