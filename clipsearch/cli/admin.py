"""`clipsearch status` and `clipsearch serve`: looking at a database, and keeping it in memory."""

from __future__ import annotations

import json
import signal
from typing import Annotated

import typer

from clipsearch.cli.app import blas_single_threaded, command, say
from clipsearch.cli.options import DbOption, DeviceOption, TracebackOption, data_dir, finite
from clipsearch.models.device import Device
from clipsearch.text import plural


@command(epilog="Examples:  clipsearch status  ·  clipsearch status --json | jq .images  ·  "
                    "clipsearch status --skipped")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    skipped: Annotated[bool, typer.Option("--skipped", help="Also list every file that could not be used, with "
                                          "why.")] = False,
    db: DbOption = None,
    show_traceback: TracebackOption = False,
) -> None:
    """Show where the database is, which model it uses, and what it holds."""
    from clipsearch.library import Library
    from clipsearch.output.status_text import status_lines

    report = Library(data_dir(db).root).status(skipped=skipped)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo("\n".join(status_lines(report)))


@command(epilog="Examples:  clipsearch serve &  ·  clipsearch serve --idle-timeout 30  ·  "
                    "CLIPSEARCH_NO_SERVER=1 clipsearch query cat   (search without the server)")
def serve(
    db: DbOption = None,
    device: DeviceOption = Device.auto,
    idle_timeout: Annotated[float | None, typer.Option("--idle-timeout", min=0.01, metavar="MINUTES", callback=finite,
                                                       help="Exit after this long without a query.")] = None,
    show_traceback: TracebackOption = False,
) -> None:
    """Keep the model and index in memory: `query` and `similar` then answer in milliseconds.

    They use the server on their own whenever it runs for the same database, and search by themselves when it
    does not. Its socket is private to you. Stop it with Ctrl-C (or SIGTERM).
    """
    blas_single_threaded()
    from clipsearch.web.server import ServeOptions, Started, run_server

    folder = data_dir(db)
    signal.signal(signal.SIGTERM, _stop_serving)
    say(f"loading {folder.root}")
    def started(where: Started) -> None:
        say(f"serving {folder.root} on {where.socket} (Ctrl-C to stop)")

    answered = run_server(folder, ServeOptions(device, idle_timeout * 60 if idle_timeout else None), started,
                          on_idle=lambda minutes: say(f"idle for {minutes:.0f} min (--idle-timeout): stopping"))
    say(f"stopped after answering {plural(answered, 'request')}")


def _stop_serving(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
