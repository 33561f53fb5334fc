"""What a search is asked: the kind of query, the queries, and the options that shape the answer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from clipsearch.errors import UsageError


class QueryKind(str, Enum):
    text = "text"
    image = "image"


@dataclass(frozen=True)
class QueryOptions:
    limit: int = 10
    min_score: float | None = None
    within: tuple[str, ...] = ()  # only files under any of these folders
    include_self: bool = False  # similar: keep the query image in its own results

    def __post_init__(self) -> None:
        # Arrives as a list from JSON (the server's requests); a bare string would be iterated letter by letter.
        within = (self.within,) if isinstance(self.within, str) else tuple(self.within or ())
        object.__setattr__(self, "within", within)
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise UsageError(f"--limit {self.limit}: must be a whole number of at least 1")
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise UsageError(f"--min-score {self.min_score}: must be a number")
