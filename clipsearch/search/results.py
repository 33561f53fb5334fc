"""What a search answers: ranked results. Light to import: a query answered by `clipsearch serve` needs only this."""

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
class SearchAnswer:
    results: list[SearchResult]
    missing: int = 0  # results left out because their file no longer exists
