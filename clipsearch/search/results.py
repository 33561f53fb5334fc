"""What a search answers: ranked results. Light to import: a query answered by `clipsearch serve` needs only this."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """One photo a search found, with what the catalogue knows of it."""

    rank: int  # 1-based, per query
    score: float  # cosine similarity, higher is closer
    path: str  # absolute; may hold surrogate escapes for names that are not valid UTF-8
    width: int | None
    height: int | None
    taken_at: str | None  # ISO 8601 capture time from EXIF, when known
    query: str | None = None  # the text or image path that produced it
    camera: str | None = None  # from EXIF, when known
    id: int | None = None  # the catalogue row: how `clipsearch web` names a photo
    box: list[int] | None = None  # `query --where`: [x, y, w, h] of the best region, in the upright photo's pixels


def camera_name(make: str | None, model: str | None) -> str | None:
    """'Canon EOS 5D' rather than 'Canon Canon EOS 5D': the model alone when it already names the maker."""
    if not model:
        return make or None
    if make and make.split()[0].lower() not in model.lower():
        return f"{make} {model}"
    return model


@dataclass(frozen=True)
class SearchAnswer:
    results: list[Result]
    missing: int = 0  # results left out because their file no longer exists
