"""`clipsearch status` and `clipsearch serve`: looking at a database, and keeping it in memory."""

from __future__ import annotations

import contextlib
import json
import signal
from typing import Annotated

import typer

from clipsearch.cli.app import app, blas_single_threaded, say
from clipsearch.cli.options import DbOption, DeviceOption, TracebackOption, data_dir
from clipsearch.models.device import Device
from clipsearch.text import plural


@app.command(epilog="Examples:  clipsearch status  ·  clipsearch status --json | jq .images")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    db: DbOption = None,
    show_traceback: TracebackOption = False,
) -> None:
    """Show where the database is, which model it uses, and what it holds."""
    from clipsearch.search.status import database_status

    report = database_status(data_dir(db))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    for label, value in report.lines():
        typer.echo(f"{label + ':':<14}{value}")


@app.command(epilog="Examples:  clipsearch serve &  ·  clipsearch serve --idle-timeout 30  ·  "
                    "CLIPSEARCH_NO_SERVER=1 clipsearch query cat   (search without the server)")
def serve(
    db: DbOption = None,
    device: DeviceOption = Device.auto,
    idle_timeout: Annotated[float | None, typer.Option("--idle-timeout", min=0.01, metavar="MINUTES",
                                                       help="Exit after this long without a query.")] = None,
    show_traceback: TracebackOption = False,
) -> None:
    """Keep the model and index in memory: `query` and `similar` then answer in milliseconds.

    They use the server on their own whenever it runs for the same database, and search by themselves when it
    does not. Its socket is private to you. Stop it with Ctrl-C (or SIGTERM).
    """
    blas_single_threaded()
    from clipsearch.search.server import SearchServer, ServeOptions

    folder = data_dir(db)
    server = SearchServer(folder, ServeOptions(device, idle_timeout * 60 if idle_timeout else None))
    signal.signal(signal.SIGTERM, _stop_serving)
    say(f"loading {folder.root}")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve(on_ready=lambda path: say(f"serving {folder.root} on {path} (Ctrl-C to stop)"))
    say(f"stopped after answering {plural(server.answered, 'request')}")


def _stop_serving(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
