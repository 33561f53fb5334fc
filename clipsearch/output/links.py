"""A folder of symbolic links to the results: look through them in any image viewer, send them, or copy them.

The links are named by rank, then the file's own name (`01-DSC_0128.JPG`), so that files with the same
name from different folders (cameras number every card from DSC_0001) never collide, and a viewer
sorts them in the order found. With several queries, each gets its own subfolder. Only symlinks are
ever replaced: a real file in the way is an error, never overwritten. The photos are not touched.

A result is linked only while its path still holds a regular file reached through no symbolic link (the
catalogue holds real paths): a link put in a photo's place since it was indexed would make the new link lead
wherever it points, so such a result is left out, and said.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from clipsearch.errors import UsageError, describe_os_error
from clipsearch.search.results import Result
from clipsearch.text import visible


def _safe_name(text: str, limit: int = 60) -> str:
    """A query as a folder name: no slashes or control characters, not too long."""
    cleaned = "".join(c if c.isprintable() and c not in "/\\\0" else "_" for c in text).strip(". ")
    return cleaned[:limit] or "query"


def _link_name(prefix: str, name: str, folder: Path) -> str:
    """prefix + name, with the middle of the name cut (keeping its extension) where the whole would pass the
    file system's limit on a name's bytes (NAME_MAX, 255 on most): a photo's name can nearly fill it alone."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(prefix + name)) <= limit:
        return prefix + name
    stem, extension = os.path.splitext(name)
    if len(os.fsencode(extension)) > 16:  # not an extension: a dot somewhere in a long name
        stem, extension = name, ""
    budget = limit - len(os.fsencode(prefix + "…" + extension))
    head = _fitting(stem, (budget + 1) // 2)
    tail = _fitting(stem[len(head):][::-1], budget - len(os.fsencode(head)))[::-1]
    return prefix + head + "…" + tail + extension


def _fitting(text: str, room: int) -> str:
    """The longest start of `text` whose bytes on disk fit in `room` (a surrogate escape is one byte)."""
    used = 0
    for end, char in enumerate(text):
        used += len(os.fsencode(char))
        if used > room:
            return text[:end]
    return text


def still_the_photo(path: str) -> bool:
    """Whether a catalogued path still holds a regular file, with no symbolic link on the way to it."""
    try:
        return os.path.realpath(path) == path and stat.S_ISREG(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def link_results(results: Sequence[Result], folder: Path, several_queries: bool,
                 skipped: Callable[[str], None] = lambda path: None) -> int:
    """Make `folder` hold a symlink per result; returns how many were made. A result whose path is no longer a
    regular file reached through no link is left out, and passed to `skipped`."""
    kept = []
    for result in results:
        if still_the_photo(result.path):
            kept.append(result)
        else:
            skipped(result.path)
    queries = list(dict.fromkeys(r.query for r in results)) if several_queries else [None]
    made = 0
    for number, query in enumerate(queries, start=1):
        target = folder / f"{number:02d}-{_safe_name(query or '')}" if several_queries else folder
        group = [r for r in kept if r.query == query] if several_queries else kept
        made += _link_group(group, target)
    return made


def _link_group(results: Sequence[Result], folder: Path) -> int:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--link-to {visible(str(folder))}: {describe_os_error(error)}") from error
    width = max(2, len(str(max((r.rank for r in results), default=0))))
    for result in results:
        link = folder / _link_name(f"{result.rank:0{width}d}-", os.path.basename(result.path), folder)
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise UsageError(f"--link-to: {visible(str(link))} exists and is not a link clipsearch made; "
                             "nothing there is overwritten: pick an empty folder")
        try:
            link.symlink_to(result.path)
        except OSError as error:
            raise UsageError(f"--link-to: cannot make {visible(str(link))}: {describe_os_error(error)}") from error
    return len(results)
