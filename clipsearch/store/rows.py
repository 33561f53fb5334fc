"""The records the catalogue reads and writes, and how file paths are stored in it.

Paths are stored as BLOBs of their exact bytes (os.fsencode): file names that are not valid UTF-8
survive, and folder filters compare byte prefixes, so `%` and `_` in folder names mean nothing special.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np


@dataclass(frozen=True)
class KnownFile:
    id: int
    size: int
    mtime_ns: int
    hash: str


@dataclass(frozen=True)
class FileRecord:
    id: int
    path: str
    width: int | None
    height: int | None
    taken_at: str | None
    camera_make: str | None = None
    camera_model: str | None = None
    size: int | None = None  # as catalogued (records() fills them): what the file must still be to be served
    mtime_ns: int | None = None


@dataclass(frozen=True)
class NewFile:
    """A file ready to be written with its vector."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    width: int | None
    height: int | None
    taken_at: str | None
    vector: np.ndarray
    camera_make: str | None = None
    camera_model: str | None = None


@dataclass(frozen=True)
class Move:
    id: int
    new_path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Changes:
    removed: list[int]
    updated_ids: np.ndarray
    updated_vectors: np.ndarray
    # False when tombstones the caller needed were pruned (it is older than the saved index): compare ids instead.
    removals_complete: bool = True


@dataclass(frozen=True)
class CatalogStats:
    files: int
    roots: list[str]
    last_indexed: str | None
    failures: int


def encode_path(path: str) -> bytes:
    return os.fsencode(path)


def decode_path(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else os.fsdecode(raw)


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


# Everything under a folder, as a range of byte strings: BLOBs compare like memcmp, so the path index serves it,
# and `%` and `_` in names mean nothing special. b"0" is the byte after b"/".
UNDER = "(path >= ? AND path < ?)"
AT_OR_UNDER = f"(path = ? OR {UNDER})"


def under(folder: str) -> tuple[bytes, bytes]:
    """The parameters of UNDER for a folder."""
    prefix = encode_path(folder)
    prefix = prefix if prefix.endswith(b"/") else prefix + b"/"
    return prefix, prefix[:-1] + b"0"


def at_or_under(path: str) -> tuple[bytes, bytes, bytes]:
    """The parameters of AT_OR_UNDER for a file or folder."""
    return (encode_path(path), *under(path))


SQL_VARIABLES_PER_STATEMENT = 500  # well under SQLite's oldest limit (999)


def chunked(values: Sequence, size: int = SQL_VARIABLES_PER_STATEMENT) -> Iterator[tuple[list, str]]:
    """Values in slices for `IN (...)`, each with its placeholders: `for part, marks in chunked(ids)`."""
    values = list(values)
    for start in range(0, len(values), size):
        part = values[start:start + size]
        yield part, ",".join("?" * len(part))
