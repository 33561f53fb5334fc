"""The page's address is its query: what the search form sends, read back into QueryOptions, and the links
that change one part of it (a folder, "more like this") while keeping the rest."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from urllib.parse import urlencode

from clipsearch.errors import UsageError
from clipsearch.search.request import Filters, QueryOptions

DEFAULT_LIMIT = 48  # a full grid at 4, 6 or 8 columns
MAX_LIMIT = 500
MAX_DIGITS = 19  # a catalogue id is an SQLite integer
FILTER_FIELDS = ("folder", "after", "before", "camera", "tag")


@dataclass(frozen=True)
class PageQuery:
    q: str = ""
    like: int | None = None  # a catalogue id: "more like this"
    picture: str = ""  # the key of a dropped picture
    folder: str = ""
    after: str = ""
    before: str = ""
    camera: str = ""
    tag: str = ""
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> PageQuery:
        """Read from a query string or a form; a malformed number is a UsageError, shown on the page."""
        text = {name: " ".join(str(params.get(name, "")).split()) if name == "q" else str(params.get(name, "")).strip()
                for name in ("q", "picture", *FILTER_FIELDS)}
        like = _whole_number(params.get("like"), "like", 1)
        limit = _whole_number(params.get("limit"), "limit", 1)
        return cls(**text, like=like, limit=min(limit or DEFAULT_LIMIT, MAX_LIMIT))

    @property
    def searches(self) -> bool:
        return bool(self.q or self.like is not None or self.picture)

    @property
    def filtering(self) -> bool:
        return any(getattr(self, name) for name in FILTER_FIELDS)

    def options(self) -> QueryOptions:
        folder = os.path.abspath(os.path.expanduser(self.folder)) if self.folder else None
        filters = Filters.from_options(after=self.after or None, before=self.before or None,
                                       camera=self.camera or None, tags=(self.tag,) if self.tag else ())
        return QueryOptions(limit=self.limit, within=(folder,) if folder else (), filters=filters)

    def link(self, **changes: object) -> str:
        """This page's address with some fields changed (None or "" drops a field)."""
        changed = replace(self, **changes)
        pairs = [(f.name, getattr(changed, f.name)) for f in fields(changed)]
        kept = [(name, value) for name, value in pairs
                if value not in (None, "") and not (name == "limit" and value == DEFAULT_LIMIT)]
        return "/?" + urlencode(kept) if kept else "/"

    def filters(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FILTER_FIELDS if getattr(self, name)}


def _whole_number(value: object, name: str, least: int) -> int | None:
    if value in (None, ""):
        return None
    if len(str(value)) > MAX_DIGITS:  # int() would refuse it only past 4,300 digits, with a message as long
        raise UsageError(f"{name}: not a whole number of at most {MAX_DIGITS} digits")
    try:
        number = int(str(value))
    except ValueError:
        raise UsageError(f"{name}={value!r}: not a whole number") from None
    if number < least:
        raise UsageError(f"{name}={number}: must be at least {least}")
    return number
