"""Derived files: written atomically, and recognised later by a fingerprint of their contents.

Every cache beside the catalogue (the HNSW index, the query model, records of what was tried) is
written to a temporary name and renamed into place, so a reader sees the old file or the new one,
never half of one; and each is checked against its recorded fingerprint before it is trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

_FINGERPRINT_BYTES = 1 << 16


def fingerprint(path: Path) -> tuple[int, str]:
    """Size and a hash of the file's head and tail: catches truncation and overwrites cheaply."""
    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        digest.update(handle.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            handle.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            digest.update(handle.read())
    return size, digest.hexdigest()


def temporary_name(path: Path) -> Path:
    """Where to write `path` before renaming it into place: unique to this process."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def remove_leftovers(path: Path) -> None:
    """Delete the temporary files of earlier writes of `path` that were killed before their rename."""
    for leftover in path.parent.glob(f"{path.name}.tmp*"):
        with contextlib.suppress(OSError):
            if leftover.is_dir():
                import shutil

                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink()


def write_atomically(path: Path, data: bytes) -> None:
    temporary = temporary_name(path)
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_json_atomically(path: Path, value: Any) -> None:
    write_atomically(path, json.dumps(value, sort_keys=True).encode())


def read_json(path: Path) -> Any | None:
    """A JSON file's value, or None if it is missing or not JSON (anyone can edit it)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
