"""Write search results in the format a person or a pipeline asked for.

Everything is written as bytes to a binary stream, because file names are bytes on POSIX: a name
that is not valid UTF-8 reaches us as a str with surrogate escapes (os.fsdecode) and must go back
out as the very same bytes, or `xargs` would be handed a file that does not exist.

Each format is one writer in WRITERS; a new one (an HTML page, a contact sheet) is one more entry.
"""

from __future__ import annotations

import csv
import io
import json
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from clipsearch.output.records import columns, record, text_fields
from clipsearch.output.table import render_table
from clipsearch.search.results import SearchResult

NEWLINE_WARNING = "a path contains a newline; use -0 or --format json to read it unambiguously"
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    paths = "paths"
    null = "null"  # NUL-terminated paths: what -0 asks for


@dataclass(frozen=True)
class RenderOptions:
    console_width: int | None = None  # the terminal's width, for the table
    show_query: bool = False  # several queries: each record names its own
    cwd: str | None = None  # the table shows paths relative to it, or to `home`, when that is shorter
    home: str | None = None


Writer = Callable[[Sequence[SearchResult], typing.BinaryIO, RenderOptions], list[str]]


def choose_format(requested: OutputFormat | None, null: bool, stdout_is_tty: bool) -> OutputFormat:
    """-0/--null wins; then an explicit --format; then a table for people and bare paths for pipes."""
    if null:
        return OutputFormat.null
    if requested is not None:
        return OutputFormat(requested)
    return OutputFormat.table if stdout_is_tty else OutputFormat.paths


def render_results(results: Sequence[SearchResult], fmt: OutputFormat, out: typing.BinaryIO,
                   options: RenderOptions = RenderOptions()) -> list[str]:
    """Write `results` to `out` as `fmt` and return warnings meant for stderr."""
    return WRITERS[OutputFormat(fmt)](results, out, options)


def _paths(results: Sequence[SearchResult], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    out.write(b"".join(os.fsencode(r.path) + b"\n" for r in results))
    return [NEWLINE_WARNING] if any("\n" in r.path for r in results) else []


def _null(results: Sequence[SearchResult], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    out.write(b"".join(os.fsencode(r.path) + b"\0" for r in results))
    return []


def _json(results: Sequence[SearchResult], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    records = [record(r, options.show_query) for r in results]
    # ensure_ascii turns surrogate escapes into \udcXX, which keeps the output valid UTF-8.
    out.write((json.dumps(records, indent=2) + "\n").encode("ascii"))
    return []


def _jsonl(results: Sequence[SearchResult], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    out.write(b"".join((json.dumps(record(r, options.show_query)) + "\n").encode("ascii") for r in results))
    return []


def _csv(results: Sequence[SearchResult], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    """RFC 4180 quoting (fields with commas, quotes or newlines are quoted), rows ended by "\\n"."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns(options.show_query))
    writer.writerows(list(text_fields(r, options.show_query)) for r in results)
    out.write(buffer.getvalue().encode("utf-8", errors="surrogateescape"))
    return []


def _tsv(results: Sequence[SearchResult], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    """A header line, then one line per result with fields separated by tabs.

    No quoting: inside a field a backslash is written as \\\\, a tab as \\t, a newline
    as \\n and a carriage return as \\r, so every record is exactly one line and
    `cut -f3` gives the path (unescape those four sequences to get it back exactly).
    Empty fields mean "unknown".
    """
    lines = ["\t".join(columns(options.show_query))]
    lines += ["\t".join(f.translate(_TSV_ESCAPES) for f in text_fields(r, options.show_query)) for r in results]
    out.write(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))
    return []


def _table(results: Sequence[SearchResult], out: typing.BinaryIO, options: RenderOptions) -> list[str]:
    if results:
        text = render_table(results, options.show_query, options.console_width, _is_terminal(out), options.cwd,
                            options.home)
        out.write(text.encode("utf-8", errors="backslashreplace"))
    return []


def _is_terminal(out: typing.BinaryIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError, OSError):
        return False


WRITERS: dict[OutputFormat, Writer] = {
    OutputFormat.table: _table,
    OutputFormat.json: _json,
    OutputFormat.jsonl: _jsonl,
    OutputFormat.csv: _csv,
    OutputFormat.tsv: _tsv,
    OutputFormat.paths: _paths,
    OutputFormat.null: _null,
}
