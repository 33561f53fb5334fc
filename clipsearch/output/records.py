"""Records as JSON, JSON Lines, CSV and TSV, and paths as lines or NUL-separated: the machine-readable formats
every command shares, whatever its records hold; and the record of one search result (record(), columns()).

Everything is written as bytes, because file names are bytes on POSIX: a name that is not valid UTF-8
reaches us as a str with surrogate escapes (os.fsdecode) and must go back out as the very same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import typing
from collections.abc import Iterable, Sequence

from clipsearch.search.results import Result

NEWLINE_WARNING = "a path contains a newline; use -0 or --format json to read it unambiguously"
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COLUMNS = ("rank", "score", "path", "width", "height", "taken_at", "camera")  # of a search result


def columns(show_query: bool, with_box: bool = False) -> tuple[str, ...]:
    return (*COLUMNS, *(("query",) if show_query else ()), *(("box",) if with_box else ()))


def record(result: Result, show_query: bool) -> dict[str, object]:
    """The fields of one search result, as every machine-readable format writes them."""
    fields: dict[str, object] = {
        "rank": result.rank,
        "score": round(result.score, 4),
        "path": result.path,
        "width": result.width,
        "height": result.height,
        "taken_at": result.taken_at,
        "camera": result.camera,
    }
    if show_query:
        fields["query"] = result.query
    if result.box is not None:
        fields["box"] = result.box
    return fields


def write_json(records: Sequence[dict], out: typing.BinaryIO) -> None:
    # ensure_ascii turns surrogate escapes into \udcXX, which keeps the output valid UTF-8.
    out.write((json.dumps(list(records), indent=2) + "\n").encode("ascii"))


def write_jsonl(records: Iterable[dict], out: typing.BinaryIO) -> None:
    out.write(b"".join((json.dumps(r) + "\n").encode("ascii") for r in records))


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return str(value)


def write_csv(records: Sequence[dict], columns: Sequence[str], out: typing.BinaryIO) -> None:
    """RFC 4180 quoting (fields with commas, quotes or newlines are quoted), rows ended by "\\n"."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_text(r.get(c)) for c in columns] for r in records)
    out.write(buffer.getvalue().encode("utf-8", errors="surrogateescape"))


def write_tsv(records: Sequence[dict], columns: Sequence[str], out: typing.BinaryIO) -> None:
    """A header line, then one line per record with fields separated by tabs.

    No quoting: inside a field a backslash is written as \\\\, a tab as \\t, a newline
    as \\n and a carriage return as \\r, so every record is exactly one line and
    `cut -f3` gives the path (unescape those four sequences to get it back exactly).
    Empty fields mean "unknown".
    """
    lines = ["\t".join(columns)]
    lines += ["\t".join(_text(r.get(c)).translate(_TSV_ESCAPES) for c in columns) for r in records]
    out.write(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))


def write_paths(paths: Sequence[str], out: typing.BinaryIO, terminator: bytes = b"\n") -> list[str]:
    """Each path's exact bytes, then the terminator; a warning when a newline would make lines ambiguous."""
    out.write(b"".join(os.fsencode(p) + terminator for p in paths))
    return [NEWLINE_WARNING] if terminator == b"\n" and any("\n" in p for p in paths) else []


def is_terminal(out: typing.BinaryIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError, OSError):
        return False
