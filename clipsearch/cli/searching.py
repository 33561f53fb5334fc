"""`clipsearch query` and `clipsearch similar`: parse, search (through a server when one runs), render."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clipsearch.cli.app import blas_single_threaded, command, say
from clipsearch.cli.bundles import bundled
from clipsearch.cli.options import (
    DbOption,
    DeviceOption,
    LikeOption,
    ModelOption,
    PrecisionOption,
    Presentation,
    PretrainedOption,
    SearchOptions,
    TracebackOption,
    WhereOption,
    data_dir,
    non_empty_path,
)
from clipsearch.errors import ExitCode, UsageError
from clipsearch.models.device import Device, Precision
from clipsearch.models.identity import ModelChoice
from clipsearch.output.formats import OutputFormat
from clipsearch.search.request import QueryKind, QueryOptions

if TYPE_CHECKING:
    from clipsearch.library import Library


def _queries(arguments: list[str], what: str) -> list[str]:
    """The queries: the arguments, or with '-' alone, one per line of stdin."""
    if "-" not in arguments:
        return arguments
    if arguments != ["-"]:
        raise UsageError(f"'-' reads {what} from stdin, one per line, and takes no other arguments")
    return stdin_lines(what)


def stdin_lines(what: str) -> list[str]:
    """The non-blank lines of stdin; at least one."""
    lines = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    if not lines:
        raise UsageError(f"no {what} on stdin ('-' reads one per line)")
    return lines


def open_library(db: Path | None, choice: ModelChoice | None = None) -> Library:
    from clipsearch.library import Library

    choice = choice or ModelChoice()
    return Library(data_dir(db).root, model=choice.model, pretrained=choice.pretrained, device=choice.device,
                   precision=choice.precision)


def _search_and_render(kind: QueryKind, queries: list[str], options: QueryOptions, db: Path | None,
                       how: Presentation, choice: ModelChoice) -> None:
    blas_single_threaded()
    from clipsearch.cli.presenting import present

    with open_library(db, choice) as library:
        answer = library.answer(kind, queries, options, where=how.where)
        for warning in present(kind, queries, answer, how, library.data_dir):
            say(f"clipsearch: warning: {warning}")
    if not answer.results:
        if sys.stdout.isatty() and how.listing.output_format in (None, OutputFormat.table):
            say("no matches")
        raise typer.Exit(ExitCode.NOTHING_FOUND)


QUERY_EXAMPLES = ("Examples:  clipsearch query sunset beach  ·  clipsearch query 'dog in snow' -n 20 --link-to "
                  "~/picks  ·  printf 'cat\\ndog\\n' | clipsearch query - -f jsonl")


@command(epilog=QUERY_EXAMPLES)
@bundled("search", SearchOptions)
@bundled("how", Presentation)
def query(
    text: Annotated[list[str], typer.Argument(
        metavar="TEXT...", help="What to look for; words are joined. '-' alone reads one query per line from "
                                "stdin.")],
    *,
    search: SearchOptions,
    like: LikeOption = None,
    how: Presentation,
    where: WhereOption = False,
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = Device.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Find photos matching a description. Exit code 0 if something was found, 1 if not, 2 on error."""
    queries = _queries(text, "queries") if "-" in text else [" ".join(text)]
    _search_and_render(QueryKind.text, queries, search.query_options(like=like), db, replace(how, where=where),
                       ModelChoice(model, pretrained, device))


@command(epilog="Examples:  clipsearch similar ~/Photos/2019/img_0042.jpg  ·  clipsearch similar IMG_0042.jpg "
                "--and 'at night'  ·  clipsearch similar ~/Downloads/inspiration.png -n 20 -0 | xargs -0 ls -l")
@bundled("search", SearchOptions)
@bundled("how", Presentation)
def similar(
    images: Annotated[list[str], typer.Argument(
        parser=non_empty_path(str),
        metavar="IMAGE...", help="Image files (indexed or not). '-' reads paths from stdin, one per line.")],
    *,
    search: SearchOptions,
    include_self: Annotated[bool, typer.Option("--include-self", help="Keep an indexed query image in its own "
                                               "results.")] = False,
    how: Presentation,
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Find photos that look like the given ones."""
    queries = _queries(images, "image paths")
    _search_and_render(QueryKind.image, queries, search.query_options(include_self=include_self), db, how,
                       ModelChoice(model, pretrained, device, precision))


# People type `search` as often as `query`: the same command under both names.
command(name="search", epilog=QUERY_EXAMPLES, help="The same as `clipsearch query`.", hidden=True)(query)
