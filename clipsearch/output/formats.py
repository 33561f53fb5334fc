"""Write search results in the format a person or a pipeline asked for.

Everything is written as bytes to a binary stream, because file names are bytes on POSIX: a name
that is not valid UTF-8 reaches us as a str with surrogate escapes (os.fsdecode) and must go back
out as the very same bytes, or `xargs` would be handed a file that does not exist.

Each format is one writer in WRITERS; a new one is one more entry. A writer gets the results, the stream, and a
RenderOptions: everything a writer may need, from the terminal's width to the thumbnails an HTML page embeds.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from clipsearch.errors import UsageError
from clipsearch.output.html import render_html
from clipsearch.output.records import (
    columns,
    is_terminal,
    record,
    write_csv,
    write_json,
    write_jsonl,
    write_paths,
    write_tsv,
)
from clipsearch.output.table import render_table
from clipsearch.search.results import Result


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    paths = "paths"
    null = "null"  # NUL-terminated paths: what -0 asks for
    html = "html"  # a self-contained page with thumbnails (query and similar)


Thumbnails = Callable[[str], bytes | None]  # path -> the JPEG of its thumbnail, or None when it cannot be made


@dataclass(frozen=True)
class RenderOptions:
    """What a writer may need besides the results: each takes what it uses."""

    console_width: int | None = None  # the terminal's width, for the table
    show_query: bool = False  # several queries: each record names its own
    cwd: str | None = None  # the table shows paths relative to it, or to `home`, when that is shorter
    home: str | None = None
    thumbnail: Thumbnails | None = None  # html embeds them: only search results (query, similar) have them
    title: str = "clipsearch"  # the page's title (html)


Writer = Callable[[Sequence[Result], typing.BinaryIO, RenderOptions], list[str]]


def choose_format(requested: OutputFormat | None, null: bool, stdout_is_tty: bool) -> OutputFormat:
    """-0/--null wins; then an explicit --format; then a table for people and bare paths for pipes."""
    if null:
        return OutputFormat.null
    if requested is not None:
        return OutputFormat(requested)
    return OutputFormat.table if stdout_is_tty else OutputFormat.paths


def render_results(results: Sequence[Result], fmt: OutputFormat, out: typing.BinaryIO,
                   options: RenderOptions = RenderOptions()) -> list[str]:
    """Write `results` to `out` as `fmt` and return warnings meant for stderr."""
    return WRITERS[OutputFormat(fmt)](results, out, options)


def _paths(results: Sequence[Result], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    return write_paths([r.path for r in results], out)


def _null(results: Sequence[Result], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    return write_paths([r.path for r in results], out, b"\0")


def _json(results: Sequence[Result], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    write_json([record(r, options.show_query) for r in results], out)
    return []


def _jsonl(results: Sequence[Result], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    write_jsonl((record(r, options.show_query) for r in results), out)
    return []


def _columns(results: Sequence[Result], options: RenderOptions) -> tuple[str, ...]:
    return columns(options.show_query, with_box=any(r.box is not None for r in results))


def _csv(results: Sequence[Result], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    write_csv([record(r, options.show_query) for r in results], _columns(results, options), out)
    return []


def _tsv(results: Sequence[Result], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    write_tsv([record(r, options.show_query) for r in results], _columns(results, options), out)
    return []


def _table(results: Sequence[Result], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    if results:
        text = render_table(results, options.show_query, options.console_width, is_terminal(out), options.cwd,
                            options.home)
        out.write(text.encode("utf-8", errors="backslashreplace"))
    return []


def _html(results: Sequence[Result], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    if options.thumbnail is None:
        raise UsageError(HTML_IS_FOR_RESULTS)
    return render_html(results, out, options.thumbnail, title=options.title)


HTML_IS_FOR_RESULTS = "-f html is for `query` and `similar`, which have the thumbnails it embeds"


def choose_listing_format(chosen: OutputFormat | None, null: bool, stdout_is_terminal: bool) -> OutputFormat:
    """choose_format for commands that list something other than search results (classify, tags, locate...)."""
    if chosen is OutputFormat.html:
        raise UsageError(HTML_IS_FOR_RESULTS)
    return choose_format(chosen, null, stdout_is_terminal)


WRITERS: dict[OutputFormat, Writer] = {
    OutputFormat.table: _table,
    OutputFormat.json: _json,
    OutputFormat.jsonl: _jsonl,
    OutputFormat.csv: _csv,
    OutputFormat.tsv: _tsv,
    OutputFormat.paths: _paths,
    OutputFormat.null: _null,
    OutputFormat.html: _html,
}
