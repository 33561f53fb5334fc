"""The fields of one result, as every machine-readable format writes them."""

from __future__ import annotations

from collections.abc import Iterator

from clipsearch.search.results import SearchResult

COLUMNS = ("rank", "score", "path", "width", "height", "taken_at")


def columns(show_query: bool) -> tuple[str, ...]:
    return (*COLUMNS, "query") if show_query else COLUMNS


def record(result: SearchResult, show_query: bool) -> dict[str, object]:
    fields: dict[str, object] = {
        "rank": result.rank,
        "score": round(result.score, 4),
        "path": result.path,
        "width": result.width,
        "height": result.height,
        "taken_at": result.taken_at,
    }
    if show_query:
        fields["query"] = result.query
    return fields


def text_fields(result: SearchResult, show_query: bool) -> Iterator[str]:
    """The record's fields as text, in column order; unknown values are empty."""
    fields = record(result, show_query)
    fields["score"] = f"{result.score:.4f}"
    for column in columns(show_query):
        value = fields[column]
        yield "" if value is None else str(value)
