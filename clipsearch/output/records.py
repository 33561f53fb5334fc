"""The fields of one result, as every machine-readable format writes them."""

from __future__ import annotations

from clipsearch.search.results import Result

COLUMNS = ("rank", "score", "path", "width", "height", "taken_at", "camera")


def columns(show_query: bool, with_box: bool = False) -> tuple[str, ...]:
    return (*COLUMNS, *(("query",) if show_query else ()), *(("box",) if with_box else ()))


def record(result: Result, show_query: bool) -> dict[str, object]:
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
