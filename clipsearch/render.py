"""Write search results in the format a person or a pipeline asked for.

Everything is written as bytes to a binary stream, because file names are bytes on
POSIX: a name that is not valid UTF-8 reaches us as a str with surrogate escapes
(os.fsdecode) and must go back out as the very same bytes, or `xargs` would be handed
a file that does not exist.
"""

from __future__ import annotations

import csv
import io
import json
import os
import typing
import unicodedata
from collections.abc import Iterator, Sequence

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from clipsearch.errors import UsageError

if typing.TYPE_CHECKING:
    from clipsearch.results import SearchResult

FORMATS = ("table", "json", "jsonl", "csv", "tsv", "paths", "null")
NEWLINE_WARNING = "a path contains a newline; use -0 or --format json to read it unambiguously"
DEFAULT_TABLE_WIDTH = 120
_COLUMNS = ("rank", "score", "path", "width", "height", "taken_at")
# Shown in the table in place of control characters, so one odd name cannot break the layout.
_VISIBLE_CONTROLS = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def choose_format(requested: str | None, null: bool, stdout_is_tty: bool) -> str:
    """-0/--null wins; then an explicit --format; then a table for people and bare paths for pipes."""
    if null:
        return "null"
    if requested is not None:
        if requested not in FORMATS:
            raise UsageError(f"unknown format {requested!r}; choose one of {', '.join(FORMATS)}")
        return requested
    return "table" if stdout_is_tty else "paths"


def render_results(
    results: Sequence[SearchResult],
    fmt: str,
    out: typing.BinaryIO,
    *,
    console_width: int | None = None,
    show_query: bool = False,
) -> list[str]:
    """Write `results` to `out` as `fmt` and return warnings meant for stderr."""
    if fmt == "paths":
        return _write_paths(results, out)
    if fmt == "null":
        out.write(b"".join(os.fsencode(r.path) + b"\0" for r in results))
    elif fmt == "json":
        records = [_record(r, show_query) for r in results]
        # ensure_ascii turns surrogate escapes into \udcXX, which keeps the output valid UTF-8.
        out.write((json.dumps(records, indent=2) + "\n").encode("ascii"))
    elif fmt == "jsonl":
        out.write(b"".join((json.dumps(_record(r, show_query)) + "\n").encode("ascii") for r in results))
    elif fmt == "csv":
        out.write(_csv(results, show_query).encode("utf-8", errors="surrogateescape"))
    elif fmt == "tsv":
        out.write(_tsv(results, show_query).encode("utf-8", errors="surrogateescape"))
    elif fmt == "table":
        if results:
            text = _table(results, show_query, console_width or DEFAULT_TABLE_WIDTH, _is_terminal(out))
            out.write(text.encode("utf-8", errors="backslashreplace"))
    else:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return []


def _write_paths(results: Sequence[SearchResult], out: typing.BinaryIO) -> list[str]:
    out.write(b"".join(os.fsencode(r.path) + b"\n" for r in results))
    if any("\n" in r.path for r in results):
        return [NEWLINE_WARNING]
    return []


def _columns(show_query: bool) -> tuple[str, ...]:
    return (*_COLUMNS, "query") if show_query else _COLUMNS


def _record(result: SearchResult, show_query: bool) -> dict[str, object]:
    record: dict[str, object] = {
        "rank": result.rank,
        "score": round(result.score, 4),
        "path": result.path,
        "width": result.width,
        "height": result.height,
        "taken_at": result.taken_at,
    }
    if show_query:
        record["query"] = result.query
    return record


def _text_fields(result: SearchResult, show_query: bool) -> Iterator[str]:
    record = _record(result, show_query)
    record["score"] = f"{result.score:.4f}"
    for column in _columns(show_query):
        value = record[column]
        yield "" if value is None else str(value)


def _csv(results: Sequence[SearchResult], show_query: bool) -> str:
    """RFC 4180 quoting (fields with commas, quotes or newlines are quoted), rows ended by "\\n"."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_columns(show_query))
    writer.writerows(list(_text_fields(r, show_query)) for r in results)
    return buffer.getvalue()


def _tsv(results: Sequence[SearchResult], show_query: bool) -> str:
    """A header line, then one line per result with fields separated by tabs.

    No quoting: inside a field a backslash is written as \\\\, a tab as \\t, a newline
    as \\n and a carriage return as \\r, so every record is exactly one line and
    `cut -f3` gives the path (unescape those four sequences to get it back exactly).
    Empty fields mean "unknown".
    """
    lines = ["\t".join(_columns(show_query))]
    lines += ["\t".join(f.translate(_TSV_ESCAPES) for f in _text_fields(r, show_query)) for r in results]
    return "\n".join(lines) + "\n"


def _is_terminal(out: typing.BinaryIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def visible(text: str) -> str:
    """`text` with control characters as their Unicode pictures (␊) and undecodable bytes as \\xNN."""
    chars = []
    for char in text:
        code = ord(char)
        if code in _VISIBLE_CONTROLS:
            chars.append(_VISIBLE_CONTROLS[code])
        elif 0xDC80 <= code <= 0xDCFF:  # a surrogate escape: one byte that was not UTF-8
            chars.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            chars.append(f"\\u{code:04x}")
        else:
            chars.append(char)
    return "".join(chars)


def _path_text(path: str) -> Text:
    folder, sep, name = path.rpartition(os.sep)
    # Text objects are never parsed as markup, so "[red]" in a file name stays literal.
    return Text.assemble((visible(folder + sep), "dim"), (visible(name), "bold"))


def _taken(taken_at: str | None) -> str:
    return taken_at.replace("T", " ") if taken_at else ""


def _size(result: SearchResult) -> str:
    return f"{result.width}x{result.height}" if result.width and result.height else ""


def _results_table(results: Sequence[SearchResult], title: str | None) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("path", overflow="fold", ratio=1)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("taken", no_wrap=True)
    for r in results:
        table.add_row(
            Text(str(r.rank)), Text(f"{r.score:.4f}"), _path_text(r.path), Text(_size(r)), Text(_taken(r.taken_at))
        )
    return table


def _table(results: Sequence[SearchResult], show_query: bool, width: int, colour: bool) -> str:
    if show_query:
        queries = list(dict.fromkeys(r.query for r in results))
        parts: list[Table | Text] = []
        for q in queries:
            if parts:
                parts.append(Text(""))
            parts.append(_results_table([r for r in results if r.query == q], visible(q) if q is not None else None))
        renderable: Table | Group = Group(*parts)
    else:
        renderable = _results_table(results, None)
    buffer = io.StringIO()
    # Styles only when the bytes go to a terminal; rich itself still honours NO_COLOR.
    console = Console(
        file=buffer, width=width, force_terminal=colour, no_color=None if colour else True, highlight=False,
        emoji=False, markup=False, soft_wrap=False,
    )
    console.print(renderable)
    # rich pads every line to the table's width; trailing blanks only get in the way of files and diffs.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().rstrip("\n").split("\n"))
