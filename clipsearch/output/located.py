"""What `clipsearch locate` prints: boxes, best first in each picture, in every format `query` has.

The machine-readable records are {"path", "label", "score", "box": [x, y, w, h]} (CSV and TSV spell the box as
x, y, w and h columns); paths and -0 give each picture that has a box once.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

from rich import box as rich_box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from clipsearch.insight.locate import Located
from clipsearch.output.formats import OutputFormat
from clipsearch.output.insight import console_text, machine_formats
from clipsearch.output.records import write_csv, write_tsv
from clipsearch.text import visible


def record(found: Located) -> dict[str, object]:
    return {"path": found.path, "label": found.label, "score": round(found.score, 4), "box": found.box.as_list()}


def render_located(results: Sequence[Located], fmt: OutputFormat, out: typing.BinaryIO,
                   width: int | None = None) -> list[str]:
    if fmt in (OutputFormat.csv, OutputFormat.tsv):
        flat = [{"path": r.path, "label": r.label, "score": round(r.score, 4), "rank": r.rank,
                 **dict(zip("xywh", r.box.as_list()))} for r in results]
        (write_csv if fmt is OutputFormat.csv else write_tsv)(flat, ("path", "label", "score", "rank", "x", "y", "w",
                                                                     "h"), out)
        return []
    if machine_formats([record(r) for r in results], ("path", "label", "score", "box"), fmt, out):
        return []
    if fmt in (OutputFormat.paths, OutputFormat.null):
        end = b"\n" if fmt is OutputFormat.paths else b"\0"
        out.write(b"".join(path.encode("utf-8", errors="surrogateescape") + end
                           for path in dict.fromkeys(r.path for r in results)))
        return []
    blocks = []
    for path in dict.fromkeys(r.path for r in results):
        table = Table(title=visible(path), title_justify="left", box=rich_box.SIMPLE_HEAD, show_edge=False)
        for name, justify in (("#", "right"), ("label", "left"), ("score", "right"), ("x, y", "right"),
                              ("w × h", "right")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for r in (r for r in results if r.path == path):
            b = r.box
            table.add_row(str(r.rank), Text(visible(r.label)), f"{r.score:.3f}", f"{b.x}, {b.y}", f"{b.w} × {b.h}")
        blocks.append(table)
    console_text(Group(*blocks), out, width)
    return []
