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
)
from clipsearch.cli.presenting import Presentation
from clipsearch.errors import ExitCode, UsageError
from clipsearch.models.device import Device, Precision
from clipsearch.output.formats import OutputFormat
from clipsearch.output.sheet import DEFAULT_CELL, DEFAULT_COLUMNS
from clipsearch.search.request import Filters, QueryKind, QueryOptions, SortKey, Term, weighted


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


def _search_and_render(kind: QueryKind, queries: list[str], options: QueryOptions, db: Path | None,
                       how: Presentation, **model_choice) -> None:
    blas_single_threaded()
    from clipsearch.cli.presenting import present
    from clipsearch.search.router import run_search

    folder = data_dir(db)
    answer = run_search(folder, kind, queries, options, **model_choice)
    if how.where and answer.results:
        from clipsearch.insight.locate import with_boxes

        answer = with_boxes(folder, answer, model_choice.get("device", Device.auto))
    for warning in present(kind, queries, answer, how, folder):
        say(f"clipsearch: warning: {warning}")
    if not answer.results:
        if sys.stdout.isatty() and how.output_format in (None, OutputFormat.table):
            say("no matches")
        raise typer.Exit(ExitCode.NOTHING_FOUND)


# Subtracting a term at full weight overshoots: results move towards its opposite more than away from it
# (README, "Combined queries" gives the measurement behind the half).
NOT_WEIGHT = 0.5

QUERY_EXAMPLES = ("Examples:  clipsearch query sunset beach  ·  clipsearch query 'dog in snow' -n 20 --link-to "
                  "~/picks  ·  printf 'cat\\ndog\\n' | clipsearch query - -f jsonl")


def query_options(*, limit: int, min_score: float | None, within: list[Path] | None, include_self: bool = False,
                  after: str | None = None, before: str | None = None, undated: bool = False,
                  camera: str | None = None, tag: list[str] | None = None, no_tag: list[str] | None = None,
                  sort: SortKey = SortKey.score, and_: list[str] | None = None, not_: list[str] | None = None,
                  like: list[str] | None = None) -> QueryOptions:
    """What the search options say, as the core takes them: filters, and the terms of a combined query."""
    filters = Filters.from_options(after=after, before=before, undated=undated, camera=camera,
                                   tags=tuple(tag or ()), no_tags=tuple(no_tag or ()))
    if undated and not filters.dated:
        raise UsageError("--undated keeps undated photos in a search by date: give --after or --before too")
    terms = [Term(QueryKind.text, *weighted(text, 1.0)) for text in and_ or ()]
    terms += [Term(QueryKind.text, text, -weight) for text, weight in (weighted(t, NOT_WEIGHT) for t in not_ or ())]
    terms += [Term(QueryKind.image, *weighted(image, 1.0)) for image in like or ()]
    return QueryOptions(limit=limit, min_score=min_score, within=tuple(str(w) for w in within or ()),
                        include_self=include_self, filters=filters, sort=sort, terms=tuple(terms))


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
    options = query_options(limit=limit, min_score=min_score, within=within, after=after, before=before,
                            undated=undated, camera=camera, tag=tag, no_tag=no_tag, sort=sort, and_=and_,
                            not_=not_, like=like)
    how = Presentation(output_format, null, link_to, contact_sheet, columns, cell_size, preview, where)
    _search_and_render(QueryKind.text, queries, options, db, how, model=model, pretrained=pretrained, device=device)


@command(epilog="Examples:  clipsearch similar ~/Photos/2019/img_0042.jpg  ·  clipsearch similar IMG_0042.jpg "
                "--and 'at night'  ·  clipsearch similar ~/Downloads/inspiration.png -n 20 -0 | xargs -0 ls -l")
def similar(
    images: Annotated[list[str], typer.Argument(
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
    options = query_options(limit=limit, min_score=min_score, within=within, include_self=include_self,
                            after=after, before=before, undated=undated, camera=camera, tag=tag, no_tag=no_tag,
                            sort=sort, and_=and_, not_=not_)
    how = Presentation(output_format, null, link_to, contact_sheet, columns, cell_size, preview)
    _search_and_render(QueryKind.image, queries, options, db, how, model=model, pretrained=pretrained,
                       device=device, precision=precision)


# People type `search` as often as `query`: the same command under both names.
command(name="search", epilog=QUERY_EXAMPLES, help="The same as `clipsearch query`.", hidden=True)(query)
