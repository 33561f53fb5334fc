"""What travels between a command and the resident server, as JSON: the requests, and the answers rebuilt into
the same dataclasses a search in this process returns.

Both sides check what they read. The server answers a malformed request with an error; the client treats a
malformed answer as no answer and searches by itself, so a broken or foreign server can never crash a command.
JSON's \\udcXX escapes carry file names that are not valid UTF-8 through unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.results import Result, SearchAnswer

if TYPE_CHECKING:  # their modules import numpy and the index: a search answered by the server needs neither
    from clipsearch.insight.classify import Classification
    from clipsearch.insight.duplicates import DuplicateGroup, Thresholds
    from clipsearch.insight.locate import Located

API_VERSION = 3  # 2 was round 2's hand-framed protocol; a client and server of different versions do not talk
MAX_REQUEST_BYTES = 4 << 20  # larger requests (thousands of queries) are searched in-process
MAX_ANSWER_BYTES = 1 << 30


class WireError(ValueError):
    """A message that is not what its route carries: bad JSON, a missing field, a wrong type."""


def loads(data: bytes) -> dict[str, Any]:
    """A JSON object, or WireError: whatever the bytes are (deep nesting included), never anything else."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise WireError("not JSON") from error
    if not isinstance(value, dict):
        raise WireError("not a JSON object")
    return value


def dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()


def _strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise WireError(f"{name} must be a list of strings")
    return value


def _build(cls: type, data: object) -> Any:
    """A dataclass from its asdict() form; WireError for unknown or missing fields and wrong values."""
    if not isinstance(data, dict) or not set(data) <= {f.name for f in fields(cls)}:
        raise WireError(f"not a {cls.__name__}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as error:
        raise WireError(f"not a {cls.__name__}: {error}") from error


@dataclass(frozen=True)
class SearchRequest:
    kind: QueryKind
    queries: list[str]
    options: QueryOptions
    where: bool = False  # --where: each result with its best box

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "queries": self.queries, "options": asdict(self.options),
                "where": self.where}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchRequest:
        try:
            kind = QueryKind(data.get("kind"))
        except ValueError:
            raise WireError(f"no such kind of search: {data.get('kind')!r}") from None
        return cls(kind, _strings(data.get("queries"), "queries"), _build(QueryOptions, data.get("options", {})),
                   bool(data.get("where", False)))


@dataclass(frozen=True)
class ClassifyRequest:
    images: list[str]
    labels: list[str]
    templates: list[str]
    top: int = 5

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassifyRequest:
        top = data.get("top", 5)
        if not isinstance(top, int) or isinstance(top, bool):
            raise WireError("top must be a whole number")
        return cls(_strings(data.get("images"), "images"), _strings(data.get("labels"), "labels"),
                   _strings(data.get("templates", []), "templates"), top)


@dataclass(frozen=True)
class LocateRequest:
    text: str
    images: list[str]
    top: int = 3

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LocateRequest:
        text, top = data.get("text"), data.get("top", 3)
        if not isinstance(text, str) or not isinstance(top, int) or isinstance(top, bool):
            raise WireError("a locate request needs a text and a whole number top")
        return cls(text, _strings(data.get("images"), "images"), top)


@dataclass(frozen=True)
class DuplicatesRequest:
    within: list[str]
    include_similar: bool = False
    threshold: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DuplicatesRequest:
        threshold = data.get("threshold")
        if threshold is not None and (not isinstance(threshold, int | float) or isinstance(threshold, bool)):
            raise WireError("threshold must be a number")
        return cls(_strings(data.get("within", []), "within"), bool(data.get("include_similar", False)),
                   None if threshold is None else float(threshold))


def answer_to_json(answer: SearchAnswer) -> dict[str, Any]:
    return {"results": [asdict(r) for r in answer.results], "missing": answer.missing}


_RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "rank": (int,), "score": (int, float), "path": (str,), "width": (int, type(None)),
    "height": (int, type(None)), "taken_at": (str, type(None)), "query": (str, type(None)),
    "camera": (str, type(None)), "id": (int, type(None)), "box": (list, type(None)),
}


def _result(data: object) -> Result:
    """A Result whose every field has its type: a server's answer is shown to the user as it is."""
    result = _build(Result, data)
    for name, types in _RESULT_TYPES.items():
        value = getattr(result, name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise WireError(f"a result's {name} is not a {types[0].__name__}")
    if result.box is not None and (len(result.box) != 4 or not all(type(v) is int for v in result.box)):
        raise WireError("a result's box is not four whole numbers")
    return result


def answer_from_json(data: dict[str, Any]) -> SearchAnswer:
    results = data.get("results")
    missing = data.get("missing", 0)
    if not isinstance(results, list) or not isinstance(missing, int):
        raise WireError("not a search answer")
    return SearchAnswer([_result(r) for r in results], missing)


def classifications_to_json(found: list[Classification]) -> dict[str, Any]:
    return {"classifications": [asdict(c) for c in found]}


def classifications_from_json(data: dict[str, Any]) -> list[Classification]:
    from clipsearch.insight.classify import Classification

    found = data.get("classifications")
    if not isinstance(found, list):
        raise WireError("not a classification answer")
    return [_build(Classification, c) for c in found]


def located_to_json(found: list[Located], skipped: list[tuple[str, str]]) -> dict[str, Any]:
    return {"located": [asdict(f) for f in found], "skipped": [list(s) for s in skipped]}


def located_from_json(data: dict[str, Any]) -> tuple[list[Located], list[tuple[str, str]]]:
    from clipsearch.insight.locate import Box, Located

    found, skipped = data.get("located"), data.get("skipped", [])
    if not isinstance(found, list) or not isinstance(skipped, list):
        raise WireError("not a locate answer")
    located = []
    for item in found:
        if not isinstance(item, dict):
            raise WireError("not a located box")
        located.append(_build(Located, {**item, "box": _build(Box, item.get("box"))}))
    return located, [(str(path), str(reason)) for path, reason in (_strings(s, "skipped") for s in skipped)]


def duplicates_to_json(groups: list[DuplicateGroup], thresholds: Thresholds) -> dict[str, Any]:
    return {"groups": [asdict(g) for g in groups], "thresholds": asdict(thresholds)}


def duplicates_from_json(data: dict[str, Any]) -> tuple[list[DuplicateGroup], Thresholds]:
    from clipsearch.insight.duplicates import DuplicateGroup, Thresholds

    groups = data.get("groups")
    if not isinstance(groups, list):
        raise WireError("not a duplicates answer")
    return [_build(DuplicateGroup, g) for g in groups], _build(Thresholds, data.get("thresholds"))
