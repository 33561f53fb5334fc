"""What a search is asked (QueryOptions) and what it answers (SearchResult).

Light to import on purpose: a query answered by `clipsearch serve` needs these and nothing
of the search machinery behind them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchResult:
    rank: int  # 1-based, per query
    score: float  # cosine similarity, higher is closer
    path: str  # absolute; may hold surrogate escapes for names that are not valid UTF-8
    width: int | None
    height: int | None
    taken_at: str | None  # ISO 8601 capture time from EXIF, when known
    query: str | None = None  # the text or image path that produced it


@dataclass(frozen=True)
class QueryOptions:
    limit: int = 10
    min_score: float | None = None
    within: str | None = None  # only files under this folder
    include_self: bool = False  # similar: keep the query image in its own results
