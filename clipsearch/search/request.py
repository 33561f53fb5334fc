"""What a search is asked: the kind of query, the queries, and the options that shape the answer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class QueryKind(str, Enum):
    text = "text"
    image = "image"


@dataclass(frozen=True)
class QueryOptions:
    limit: int = 10
    min_score: float | None = None
    within: str | None = None  # only files under this folder
    include_self: bool = False  # similar: keep the query image in its own results
