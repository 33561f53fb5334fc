"""`clipsearch query` and `clipsearch similar`: parse, search (through a server when one runs), render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from clipsearch.cli.app import blas_single_threaded, command, say
from clipsearch.cli.options import (
    DEFAULT_LIMIT,
    AfterOption,
    AndOption,
    BeforeOption,
    CameraOption,
    CellSizeOption,
    ColumnsOption,
    ContactSheetOption,
    DbOption,
    DeviceOption,
    FormatOption,
    LikeOption,
    LimitOption,
    LinkToOption,
    MinScoreOption,
    ModelOption,
    NoTagOption,
    NotOption,
    NullOption,
    PrecisionOption,
    PretrainedOption,
    PreviewOption,
    SortOption,
    TagOption,
    TracebackOption,
    UndatedOption,
    WhereOption,
    WithinOption,
    data_dir,
    non_empty_path,
)
from clipsearch.cli.presenting import Presentation
from clipsearch.errors import ExitCode, UsageError
from clipsearch.models.device import Device, Precision
from clipsearch.models.identity import ModelChoice
from clipsearch.output.formats import OutputFormat
from clipsearch.output.sheet import DEFAULT_CELL, DEFAULT_COLUMNS
from clipsearch.search.request import QueryKind, QueryOptions, SortKey, query_options


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


def open_library(db: Path | None, choice: ModelChoice | None = None):  # -> clipsearch.Library
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
        if sys.stdout.isatty() and how.output_format in (None, OutputFormat.table):
            say("no matches")
        raise typer.Exit(ExitCode.NOTHING_FOUND)


QUERY_EXAMPLES = ("Examples:  clipsearch query sunset beach  ·  clipsearch query 'dog in snow' -n 20 --link-to "
                  "~/picks  ·  printf 'cat\\ndog\\n' | clipsearch query - -f jsonl")


def cli_query_options(*, limit: int, min_score: float | None, within: list[Path] | None, include_self: bool = False,
                      after: str | None = None, before: str | None = None, undated: bool = False,
                      camera: str | None = None, tag: list[str] | None = None, no_tag: list[str] | None = None,
                      sort: SortKey = SortKey.score, and_: list[str] | None = None, not_: list[str] | None = None,
                      like: list[str] | None = None) -> QueryOptions:
    return query_options(limit=limit, min_score=min_score, within=within or (), include_self=include_self,
                         after=after, before=before, undated=undated, camera=camera, tags=tag or (),
                         no_tags=no_tag or (), sort=sort, also=and_ or (), without=not_ or (), like=like or ())


@command(epilog=QUERY_EXAMPLES)
def query(
    text: Annotated[list[str], typer.Argument(
        metavar="TEXT...", help="What to look for; words are joined. '-' alone reads one query per line from "
                                "stdin.")],
    limit: LimitOption = DEFAULT_LIMIT,
    min_score: MinScoreOption = None,
    within: WithinOption = None,
    after: AfterOption = None,
    before: BeforeOption = None,
    undated: UndatedOption = False,
    camera: CameraOption = None,
    tag: TagOption = None,
    no_tag: NoTagOption = None,
    sort: SortOption = SortKey.score,
    and_: AndOption = None,
    not_: NotOption = None,
    like: LikeOption = None,
    output_format: FormatOption = None,
    null: NullOption = False,
    link_to: LinkToOption = None,
    contact_sheet: ContactSheetOption = None,
    columns: ColumnsOption = DEFAULT_COLUMNS,
    cell_size: CellSizeOption = DEFAULT_CELL,
    preview: PreviewOption = None,
    where: WhereOption = False,
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = Device.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Find photos matching a description. Exit code 0 if something was found, 1 if not, 2 on error."""
    queries = _queries(text, "queries") if "-" in text else [" ".join(text)]
    options = cli_query_options(limit=limit, min_score=min_score, within=within, after=after, before=before,
                                undated=undated, camera=camera, tag=tag, no_tag=no_tag, sort=sort, and_=and_,
                                not_=not_, like=like)
    how = Presentation(output_format, null, link_to, contact_sheet, columns, cell_size, preview, where)
    _search_and_render(QueryKind.text, queries, options, db, how, ModelChoice(model, pretrained, device))


@command(epilog="Examples:  clipsearch similar ~/Photos/2019/img_0042.jpg  ·  clipsearch similar IMG_0042.jpg "
                "--and 'at night'  ·  clipsearch similar ~/Downloads/inspiration.png -n 20 -0 | xargs -0 ls -l")
def similar(
    images: Annotated[list[str], typer.Argument(
        parser=non_empty_path(str),
        metavar="IMAGE...", help="Image files (indexed or not). '-' reads paths from stdin, one per line.")],
    limit: LimitOption = DEFAULT_LIMIT,
    min_score: MinScoreOption = None,
    within: WithinOption = None,
    include_self: Annotated[bool, typer.Option("--include-self", help="Keep an indexed query image in its own "
                                               "results.")] = False,
    after: AfterOption = None,
    before: BeforeOption = None,
    undated: UndatedOption = False,
    camera: CameraOption = None,
    tag: TagOption = None,
    no_tag: NoTagOption = None,
    sort: SortOption = SortKey.score,
    and_: AndOption = None,
    not_: NotOption = None,
    output_format: FormatOption = None,
    null: NullOption = False,
    link_to: LinkToOption = None,
    contact_sheet: ContactSheetOption = None,
    columns: ColumnsOption = DEFAULT_COLUMNS,
    cell_size: CellSizeOption = DEFAULT_CELL,
    preview: PreviewOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    pretrained: PretrainedOption = None,
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.auto,
    show_traceback: TracebackOption = False,
) -> None:
    """Find photos that look like the given ones."""
    queries = _queries(images, "image paths")
    options = cli_query_options(limit=limit, min_score=min_score, within=within, include_self=include_self,
                                after=after, before=before, undated=undated, camera=camera, tag=tag, no_tag=no_tag,
                                sort=sort, and_=and_, not_=not_)
    how = Presentation(output_format, null, link_to, contact_sheet, columns, cell_size, preview)
    _search_and_render(QueryKind.image, queries, options, db, how, ModelChoice(model, pretrained, device, precision))


# People type `search` as often as `query`: the same command under both names.
command(name="search", epilog=QUERY_EXAMPLES, help="The same as `clipsearch query`.", hidden=True)(query)
