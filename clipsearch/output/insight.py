"""What `classify`, `tags` and `duplicates` print, in every format `query` has."""

from __future__ import annotations

import io
import os
import typing
from collections.abc import Sequence
from dataclasses import asdict

from rich import box
from rich.console import Console, Group
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from clipsearch.insight.classify import Classification
from clipsearch.insight.duplicates import DuplicateGroup
from clipsearch.output.formats import OutputFormat
from clipsearch.output.records import is_terminal, write_csv, write_json, write_jsonl, write_paths, write_tsv
from clipsearch.output.table import DEFAULT_TABLE_WIDTH, fit_path, shown_path
from clipsearch.store.tags import TaggedFile
from clipsearch.text import visible


def console_text(renderable: object, out: typing.BinaryIO, width: int | None) -> None:
    colour = is_terminal(out)
    buffer = io.StringIO()
    Console(file=buffer, width=width or DEFAULT_TABLE_WIDTH, force_terminal=colour, no_color=None if colour else True,
            highlight=False, emoji=False, markup=False, soft_wrap=False).print(renderable)
    text = "".join(line.rstrip() + "\n" for line in buffer.getvalue().rstrip("\n").split("\n"))
    out.write(text.encode("utf-8", errors="backslashreplace"))


def machine_formats(records: list[dict], columns: Sequence[str], fmt: OutputFormat, out: typing.BinaryIO) -> bool:
    """Write the formats that are the same for every kind of record; False if `fmt` is not one of them."""
    writers = {OutputFormat.json: lambda: write_json(records, out),
               OutputFormat.jsonl: lambda: write_jsonl(records, out),
               OutputFormat.csv: lambda: write_csv(records, columns, out),
               OutputFormat.tsv: lambda: write_tsv(records, columns, out)}
    if fmt in writers:
        writers[fmt]()
        return True
    return False


def render_classifications(results: Sequence[Classification], fmt: OutputFormat, out: typing.BinaryIO,
                           width: int | None = None) -> list[str]:
    """paths and -0 give each image's path and its most probable label (path TAB label, or NUL-separated)."""
    records = [asdict(r) for r in results]
    if machine_formats(records, ("path", "label", "probability", "rank"), fmt, out):
        return []
    if fmt in (OutputFormat.paths, OutputFormat.null):
        end = "\n" if fmt is OutputFormat.paths else "\0"
        tops = [r for r in results if r.rank == 1]
        out.write("".join(f"{r.path}\t{r.label}{end}" if end == "\n" else f"{r.path}\0{r.label}\0"
                          for r in tops).encode("utf-8", errors="surrogateescape"))
        return []
    blocks: list = []
    for path in dict.fromkeys(r.path for r in results):
        table = Table(title=visible(path), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("#", justify="right")
        table.add_column("label")
        table.add_column("probability", justify="right")
        for r in (r for r in results if r.path == path):
            table.add_row(str(r.rank), Text(visible(r.label)), f"{r.probability:.3f}")
        blocks.append(table)
    console_text(Group(*blocks), out, width)
    return []


def render_tag_counts(counts: Sequence[tuple[str, int]], fmt: OutputFormat, out: typing.BinaryIO,
                      width: int | None = None) -> list[str]:
    records = [{"tag": tag, "count": count} for tag, count in counts]
    if machine_formats(records, ("tag", "count"), fmt, out):
        return []
    if fmt in (OutputFormat.paths, OutputFormat.null):
        return write_paths([tag for tag, _ in counts], out, b"\n" if fmt is OutputFormat.paths else b"\0")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("tag")
    table.add_column("photos", justify="right")
    for tag, count in counts:
        table.add_row(Text(visible(tag)), str(count))
    console_text(table, out, width)
    return []


def render_tagged(tag: str, files: Sequence[TaggedFile], fmt: OutputFormat, out: typing.BinaryIO,
                  width: int | None = None) -> list[str]:
    records = [{"rank": n, "tag": tag, "probability": round(f.probability, 4), "path": f.path}
               for n, f in enumerate(files, start=1)]
    if machine_formats(records, ("rank", "tag", "probability", "path"), fmt, out):
        return []
    if fmt in (OutputFormat.paths, OutputFormat.null):
        return write_paths([f.path for f in files], out, b"\n" if fmt is OutputFormat.paths else b"\0")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("probability", justify="right")
    table.add_column("path", overflow="fold")
    home = os.path.expanduser("~")
    for record in records:
        table.add_row(str(record["rank"]), f"{record['probability']:.3f}",
                      Text(visible(fit_path(shown_path(str(record["path"]), os.getcwd(), home),
                                            (width or DEFAULT_TABLE_WIDTH) - 24))))
    console_text(table, out, width)
    return []


def render_duplicates(groups: Sequence[DuplicateGroup], fmt: OutputFormat, out: typing.BinaryIO,
                      width: int | None = None) -> list[str]:
    """json: one object per group; paths: a block per group, blocks separated by an empty line; -0: paths
    separated by NUL, groups by a double NUL; csv and tsv: one row per photo."""
    if fmt in (OutputFormat.json, OutputFormat.jsonl):
        machine_formats([{"group": g.number, "kind": g.kind, "paths": g.paths, "scores": g.scores} for g in groups], (),
                 fmt, out)
        return []
    rows = [{"group": g.number, "kind": g.kind, "rank": n, "score": score, "path": path}
            for g in groups for n, (path, score) in enumerate(zip(g.paths, g.scores), start=1)]
    if machine_formats(rows, ("group", "kind", "rank", "score", "path"), fmt, out):
        return []
    if fmt is OutputFormat.paths:
        out.write(b"\n".join(b"".join(os.fsencode(p) + b"\n" for p in g.paths) for g in groups))
        return []
    if fmt is OutputFormat.null:
        out.write(b"\0".join(b"".join(os.fsencode(p) + b"\0" for p in g.paths) for g in groups))
        return []
    parts: list = []
    for group in groups:
        parts.append(Rule(f"group {group.number}: {group.kind}, {len(group.paths)} photos", align="left"))
        for n, (path, score) in enumerate(zip(group.paths, group.scores), start=1):
            mark = "keep" if n == 1 else f"{score:.3f}"
            parts.append(Text(f"{mark:>6}  {visible(path)}"))
    console_text(Group(*parts), out, width)
    return []
