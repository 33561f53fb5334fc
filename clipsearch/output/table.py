"""The results table people read on a terminal.

Paths are shown as short as they can be told apart: relative to the current folder, or under `~`, when
that is shorter; then, if still too wide, with the middle folders replaced by "…". A file's name is
never cut. Columns that are empty for every result are left out, and below COMPACT_WIDTH columns the
table keeps only rank, score, path and the capture date.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from clipsearch.search.results import Result
from clipsearch.text import visible

DEFAULT_TABLE_WIDTH = 120
COMPACT_WIDTH = 70
ELLIPSIS = "…"


def shown_path(path: str, cwd: str | None = None, home: str | None = None) -> str:
    """The shortest of the absolute path, the path relative to `cwd` (when under it), and `~/...`."""
    candidates = [path]
    if cwd and path.startswith(cwd.rstrip(os.sep) + os.sep):
        candidates.append(os.path.relpath(path, cwd))
    if home and path.startswith(home.rstrip(os.sep) + os.sep):
        candidates.append("~" + path[len(home.rstrip(os.sep)):])
    return min(candidates, key=len)


def fit_path(path: str, width: int) -> str:
    """`path` within `width` characters: middle folders become "…", the file name stays whole."""
    if len(path) <= width:
        return path
    folder, sep, name = path.rpartition(os.sep)
    if not sep:
        return path
    parts = folder.split(os.sep)
    head: list[str] = []
    tail: list[str] = []

    def joined(front: list[str], back: list[str]) -> str:
        return os.sep.join([*front, ELLIPSIS, *back, name])

    # Keep folders from both ends, the nearer ones first, while they fit beside the name.
    while parts:
        if len(joined(head, [parts[-1], *tail])) <= width:
            tail.insert(0, parts.pop())
        elif len(joined([*head, parts[0]], tail)) <= width:
            head.append(parts.pop(0))
        else:
            break
    return joined(head, tail)


def _taken(taken_at: str | None, compact: bool) -> str:
    if not taken_at:
        return ""
    return taken_at[:10] if compact else taken_at.replace("T", " ")[:16]


def _pixels(result: Result) -> str:
    return f"{result.width}×{result.height}" if result.width and result.height else ""


def _path_text(path: str) -> Text:
    folder, sep, name = path.rpartition(os.sep)
    # Text objects are never parsed as markup, so "[red]" in a file name stays literal.
    return Text.assemble((visible(folder + sep), "dim"), (visible(name), "bold"))


def _results_table(results: Sequence[Result], title: str | None, width: int, cwd: str | None,
                   home: str | None, previews: Sequence[object] | None = None, preview_width: int = 0) -> Table:
    compact = width < COMPACT_WIDTH
    show_pixels = not compact and any(_pixels(r) for r in results)
    show_taken = any(r.taken_at for r in results)
    widths = [max(1, len(str(max(r.rank for r in results)))), 6]  # "#" and "score"
    if previews is not None:
        widths.append(preview_width)
    if show_pixels:
        widths.append(max(6, *(len(_pixels(r)) for r in results)))
    if show_taken:
        widths.append(10 if compact else 16)
    # Each column is padded by a space on both sides and separated by one; the path column takes the rest.
    budget = max(12, width - sum(widths) - 3 * len(widths) - 1)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 1))
    if previews is not None:
        table.add_column("", width=preview_width, no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("path", overflow="fold")
    if show_pixels:
        table.add_column("pixels", justify="right", no_wrap=True)
    if show_taken:
        table.add_column("taken", no_wrap=True)
    for n, r in enumerate(results):
        cells: list = [previews[n]] if previews is not None else []
        cells += [Text(str(r.rank)), Text(f"{r.score:.4f}"),
                  _path_text(fit_path(visible(shown_path(r.path, cwd, home)), budget))]
        if show_pixels:
            cells.append(Text(_pixels(r)))
        if show_taken:
            cells.append(Text(_taken(r.taken_at, compact)))
        table.add_row(*cells)
    return table


def results_renderable(results: Sequence[Result], show_query: bool, width: int, cwd: str | None = None,
                       home: str | None = None, previews: Sequence[object] | None = None,
                       preview_width: int = 0) -> Table | Group:
    """The results as a Rich renderable: one table, or one titled table per query."""
    if not show_query:
        return _results_table(results, None, width, cwd, home, previews, preview_width)
    parts: list[Table | Text] = []
    for q in dict.fromkeys(r.query for r in results):
        if parts:
            parts.append(Text(""))
        chosen = [n for n, r in enumerate(results) if r.query == q]
        parts.append(_results_table([results[n] for n in chosen], visible(q) if q is not None else None, width,
                                    cwd, home, [previews[n] for n in chosen] if previews is not None else None,
                                    preview_width))
    return Group(*parts)


def render_table(results: Sequence[Result], show_query: bool, width: int | None, colour: bool,
                 cwd: str | None = None, home: str | None = None) -> str:
    width = width or DEFAULT_TABLE_WIDTH
    renderable = results_renderable(results, show_query, width, cwd, home)
    buffer = io.StringIO()
    # Styles only when the bytes go to a terminal; rich itself still honours NO_COLOR.
    console = Console(file=buffer, width=width, force_terminal=colour, no_color=None if colour else True,
                      highlight=False, emoji=False, markup=False, soft_wrap=False)
    console.print(renderable)
    # rich pads every line to the table's width; trailing blanks only get in the way of files and diffs.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().rstrip("\n").split("\n"))
