"""`clipsearch query` and `clipsearch similar`: parse, search (through a server when one runs), render."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from clipsearch.cli.app import blas_single_threaded, command, say
from clipsearch.cli.options import (
    DEFAULT_LIMIT,
    DbOption,
    DeviceOption,
    FormatOption,
    LimitOption,
    LinkToOption,
    MinScoreOption,
    ModelOption,
    NullOption,
    PrecisionOption,
    PretrainedOption,
    TracebackOption,
    WithinOption,
    data_dir,
)
from clipsearch.errors import ExitCode, UsageError
from clipsearch.models.device import Device, Precision
from clipsearch.output.formats import OutputFormat
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.text import plural


def _queries(arguments: list[str], what: str) -> list[str]:
    """The queries: the arguments, or with '-' alone, one per line of stdin."""
    if "-" not in arguments:
        return arguments
    if arguments != ["-"]:
        raise UsageError(f"'-' reads {what} from stdin, one per line, and takes no other arguments")
    lines = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    if not lines:
        raise UsageError(f"no {what} on stdin ('-' reads one per line)")
    return lines


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder it was started in has been removed
        return None


def _search_and_render(kind: QueryKind, queries: list[str], options: QueryOptions, db: Path | None,
                       output_format: OutputFormat | None, null: bool, link_to: Path | None,
                       **model_choice) -> None:
    blas_single_threaded()
    from clipsearch.output.formats import RenderOptions, choose_format, render_results
    from clipsearch.search.router import run_search

    fmt = choose_format(output_format, null, sys.stdout.isatty())
    answer = run_search(data_dir(db), kind, queries, options, **model_choice)
    from rich.console import Console

    width = Console().width if sys.stdout.isatty() else None
    rendering = RenderOptions(width, show_query=len(queries) > 1, cwd=_cwd(), home=os.path.expanduser("~"))
    warnings = render_results(answer.results, fmt, sys.stdout.buffer, rendering)
    sys.stdout.flush()
    if link_to is not None and answer.results:
        from clipsearch.output.links import link_results

        made = link_results(answer.results, link_to, several_queries=len(queries) > 1)
        say(f"linked {plural(made, 'result')} in {link_to}")
    if answer.missing:
        warnings.append(f"left out {plural(answer.missing, 'result')} whose file no longer exists (`clipsearch "
                        "index` brings the database up to date)")
    for warning in warnings:
        say(f"clipsearch: warning: {warning}")
    if not answer.results:
        if fmt is OutputFormat.table:
            say("no matches")
        raise typer.Exit(ExitCode.NOTHING_FOUND)


QUERY_EXAMPLES = ("Examples:  clipsearch query sunset beach  ·  clipsearch query 'dog in snow' -n 20 --link-to "
                  "~/picks  ·  printf 'cat\\ndog\\n' | clipsearch query - -f jsonl")


@command(epilog=QUERY_EXAMPLES)
def query(
    text: Annotated[list[str], typer.Argument(
        metavar="TEXT...", help="What to look for; words are joined. '-' alone reads one query per line from "
                                "stdin.")],
    limit: LimitOption = DEFAULT_LIMIT,
    min_score: MinScoreOption = None,
    within: WithinOption = None,
    output_format: FormatOption = None,
    null: NullOption = False,
    link_to: LinkToOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = Device.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Find photos matching a description. Exit code 0 if something was found, 1 if not, 2 on error."""
    queries = _queries(text, "queries") if "-" in text else [" ".join(text)]
    options = QueryOptions(limit=limit, min_score=min_score, within=tuple(str(w) for w in within or ()))
    _search_and_render(QueryKind.text, queries, options, db, output_format, null, link_to,
                       model=model, pretrained=pretrained, device=device)


@command(epilog="Examples:  clipsearch similar ~/Photos/2019/img_0042.jpg  ·  "
                    "clipsearch similar ~/Downloads/inspiration.png -n 20 -0 | xargs -0 ls -l")
def similar(
    images: Annotated[list[str], typer.Argument(
        metavar="IMAGE...", help="Image files (indexed or not). '-' reads paths from stdin, one per line.")],
    limit: LimitOption = DEFAULT_LIMIT,
    min_score: MinScoreOption = None,
    within: WithinOption = None,
    include_self: Annotated[bool, typer.Option("--include-self", help="Keep an indexed query image in its own "
                                               "results.")] = False,
    output_format: FormatOption = None,
    null: NullOption = False,
    link_to: LinkToOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Find photos that look like the given ones."""
    queries = _queries(images, "image paths")
    options = QueryOptions(limit=limit, min_score=min_score, within=tuple(str(w) for w in within or ()),
                           include_self=include_self)
    _search_and_render(QueryKind.image, queries, options, db, output_format, null, link_to,
                       model=model, pretrained=pretrained, device=device, precision=precision)


# People type `search` as often as `query`: the same command under both names.
command(name="search", epilog=QUERY_EXAMPLES, help="The same as `clipsearch query`.", hidden=True)(query)
