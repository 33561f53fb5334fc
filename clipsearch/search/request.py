"""What a search is asked: the kind of query, the queries, and the options that shape the answer.

Everything here travels to `clipsearch serve` as JSON and is rebuilt there, so each dataclass accepts
the lists and dicts JSON gives back, and checks what it is given.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from os import PathLike

from clipsearch.errors import UsageError


class QueryKind(str, Enum):
    text = "text"
    image = "image"


class SortKey(str, Enum):
    score = "score"
    date = "date"
    path = "path"


@dataclass(frozen=True)
class Term:
    """One more part of a combined query: a text or an image, added with its weight (negative: subtracted)."""

    kind: QueryKind
    value: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", QueryKind(self.kind))
        if not math.isfinite(self.weight) or self.weight == 0:
            raise UsageError(f"the weight of {self.value!r} must be a number other than 0")


_WEIGHTED = re.compile(r"^(?P<value>.*\S)\s*:\s*(?P<weight>[-+]?(\d+(\.\d*)?|\.\d+))$", re.DOTALL)


def weighted(text: str, default: float) -> tuple[str, float]:
    """'people:0.5' -> ('people', 0.5); a text without a trailing ':NUMBER' has the default weight."""
    match = _WEIGHTED.match(text)
    if match is None:
        return text, default
    return match.group("value"), float(match.group("weight"))


def _period_start(text: str, option: str) -> date:
    """The first day of a year (2023), a month (2023-06) or a day (2023-06-14)."""
    parts = text.strip().split("-")
    try:
        if len(parts) == 1 and len(parts[0]) == 4:
            return date(int(parts[0]), 1, 1)
        if len(parts) == 2:
            return date(int(parts[0]), int(parts[1]), 1)
        if len(parts) == 3:
            return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        pass
    raise UsageError(f"{option} {text}: not a date; write 2023, 2023-06 or 2023-06-14")


@dataclass(frozen=True)
class Filters:
    """Which photos a search may answer with, besides --in."""

    after: str | None = None  # from this day on (ISO date, inclusive)
    before: str | None = None  # up to this day (ISO date, exclusive)
    undated: bool = False  # with a date filter: keep photos without a capture time too
    camera: str | None = None  # EXIF Make or Model contains this, in any case
    tags: tuple[str, ...] = ()  # every one of these
    no_tags: tuple[str, ...] = ()  # none of these

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "no_tags", tuple(self.no_tags))
        if self.after and self.before and self.after >= self.before:
            raise UsageError(f"--after {self.after} is not before --before {self.before}: nothing can match")

    @classmethod
    def from_options(cls, after: str | None = None, before: str | None = None, **rest: object) -> Filters:
        """From what a user types: --after 2023 means from 2023-01-01 on, --before 2024-06 until 2024-06-01."""
        return cls(after=_period_start(after, "--after").isoformat() if after else None,
                   before=_period_start(before, "--before").isoformat() if before else None, **rest)

    @property
    def dated(self) -> bool:
        return bool(self.after or self.before)

    @property
    def active(self) -> bool:
        return bool(self.dated or self.camera or self.tags or self.no_tags)


@dataclass(frozen=True)
class QueryOptions:
    limit: int = 10
    min_score: float | None = None
    within: tuple[str, ...] = ()  # only files under any of these folders
    include_self: bool = False  # similar: keep the query image in its own results
    filters: Filters = field(default_factory=Filters)
    sort: SortKey = SortKey.score  # the order of the best `limit`, once found
    terms: tuple[Term, ...] = ()  # combined into every query: --and, --not, --like

    def __post_init__(self) -> None:
        # Arrives as lists and dicts from JSON (the server's requests); a bare string would be iterated letter by
        # letter.
        within = (self.within,) if isinstance(self.within, str) else tuple(self.within or ())
        object.__setattr__(self, "within", within)
        if isinstance(self.filters, dict):
            object.__setattr__(self, "filters", Filters(**self.filters))
        object.__setattr__(self, "sort", SortKey(self.sort))
        object.__setattr__(self, "terms", tuple(Term(**t) if isinstance(t, dict) else t for t in self.terms))
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise UsageError(f"--limit {self.limit}: must be a whole number of at least 1")
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise UsageError(f"--min-score {self.min_score}: must be a number")


# Subtracting a term at full weight overshoots: results move towards its opposite more than away from it
# (docs, "Combined queries" gives the measurement behind the half).
NOT_WEIGHT = 0.5


def query_options(*, limit: int = 10, min_score: float | None = None, within: Sequence[str | PathLike] = (),
                  include_self: bool = False, after: str | None = None, before: str | None = None,
                  undated: bool = False, camera: str | None = None, tags: Sequence[str] = (),
                  no_tags: Sequence[str] = (), sort: SortKey | str = SortKey.score, also: Sequence[str] = (),
                  without: Sequence[str] = (), like: Sequence[str] = ()) -> QueryOptions:
    """QueryOptions from what a user gives: dates as 2023, 2023-06 or 2023-06-14, and the terms of a combined
    query as TEXT[:WEIGHT] (`also`, added), TEXT[:WEIGHT] (`without`, subtracted) and IMAGE[:WEIGHT] (`like`)."""
    for name, value in (("tags", tags), ("no_tags", no_tags), ("also", also), ("without", without),
                        ("like", like), ("within", within)):
        if isinstance(value, str):
            raise UsageError(f"{name} takes a list of strings, not one string")
    filters = Filters.from_options(after=after, before=before, undated=undated, camera=camera, tags=tuple(tags),
                                   no_tags=tuple(no_tags))
    if undated and not filters.dated:
        raise UsageError("--undated keeps undated photos in a search by date: give --after or --before too")
    terms = [Term(QueryKind.text, *weighted(text, 1.0)) for text in also]
    terms += [Term(QueryKind.text, text, -weight) for text, weight in (weighted(t, NOT_WEIGHT) for t in without)]
    terms += [Term(QueryKind.image, *weighted(os.fspath(image), 1.0)) for image in like]
    if sort not in set(SortKey) and sort not in {key.value for key in SortKey}:
        raise UsageError(f"sort {sort!r}: sort by one of {', '.join(key.value for key in SortKey)}")
    return QueryOptions(limit=limit, min_score=min_score, within=tuple(os.fspath(w) for w in within),
                        include_self=include_self, filters=filters, sort=SortKey(sort), terms=tuple(terms))
