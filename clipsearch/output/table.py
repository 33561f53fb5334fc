"""The results table people read on a terminal."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from clipsearch.search.results import SearchResult
from clipsearch.text import visible

DEFAULT_TABLE_WIDTH = 120


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


def render_table(results: Sequence[SearchResult], show_query: bool, width: int | None, colour: bool) -> str:
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
        file=buffer, width=width or DEFAULT_TABLE_WIDTH, force_terminal=colour, no_color=None if colour else True,
        highlight=False, emoji=False, markup=False, soft_wrap=False,
    )
    console.print(renderable)
    # rich pads every line to the table's width; trailing blanks only get in the way of files and diffs.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().rstrip("\n").split("\n"))
