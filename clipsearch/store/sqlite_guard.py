"""SQLite's failures as one-line CatalogErrors that name the catalogue and say what to do.

Whatever SQLite reports (a damaged file, a read-only folder, a full disk, a foreign lock) can surface in any
read or write, not only when the file is opened; callers should not each have to know about sqlite3.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from clipsearch.errors import CatalogError

_Method = TypeVar("_Method", bound=Callable[..., Any])

# SQLite's primary result codes (sqlite3.h) for the failures a user can do something about.
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26
# Python < 3.11 gives no error code, only SQLite's message.
_CODES_BY_MESSAGE = (
    ("not a database", _SQLITE_NOTADB), ("malformed", _SQLITE_CORRUPT), ("readonly", _SQLITE_READONLY),
    ("disk is full", _SQLITE_FULL), ("locked", _SQLITE_BUSY), ("unable to open", _SQLITE_CANTOPEN),
    ("disk i/o error", _SQLITE_IOERR),
)


def _primary_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF  # extended codes (SQLITE_IOERR_WRITE, ...) carry the primary one in the low byte
    text = str(error).lower()
    return next((code for words, code in _CODES_BY_MESSAGE if words in text), None)


# What each failure means for the user, and what to do about it.
_ADVICE = (
    ((_SQLITE_CORRUPT, _SQLITE_NOTADB), "the catalogue {path} is damaged ({detail}): restore it from a backup, or "
                                        "move it away and run `clipsearch index` again"),
    ((_SQLITE_READONLY, _SQLITE_PERM), "cannot write to the catalogue {path} ({detail}): check that you may write "
                                       "to it and to its folder"),
    ((_SQLITE_FULL,), "cannot write to the catalogue {path}: the disk is full ({detail}); free some space and run "
                      "again (what was indexed before is kept)"),
    ((_SQLITE_BUSY, _SQLITE_LOCKED), "the catalogue {path} is locked by another program ({detail}); try again when "
                                     "it has finished"),
    ((_SQLITE_CANTOPEN,), "cannot open the catalogue {path} ({detail}): check that it and its folder exist and that "
                          "you may read and write both"),
    ((_SQLITE_IOERR,), "cannot read or write the catalogue {path} ({detail}): check the disk"),
)


def catalog_error(path: Path, error: sqlite3.Error) -> CatalogError:
    """SQLite's complaint as one line that names the catalogue file and says what to do about it."""
    code = _primary_code(error)
    detail = " ".join(str(error).split()) or type(error).__name__
    fallback = "cannot use the catalogue {path} ({detail})"
    template = next((advice for codes, advice in _ADVICE if code in codes), fallback)
    return CatalogError(template.format(path=path, detail=detail))


def is_our_bug(error: sqlite3.Error) -> bool:
    # Misused SQL and broken constraints come from our code, not from the user's file: keep their traceback.
    return isinstance(error, (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError))


def guarded(method: _Method) -> _Method:
    """Any SQLite error in a method of an object with `errors()` (a repository) becomes a CatalogError naming
    the file.

    Corruption, a read-only or full disk or a foreign lock can surface in any read or write, not
    only when the file is opened, and callers should not each have to know about sqlite3.
    """
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            with self.errors():
                yield from method(self, *args, **kwargs)

        return generator  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.errors():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def translated(path: Path) -> Iterator[None]:
    """Turn SQLite errors inside the block into a CatalogError naming the catalogue at `path`."""
    try:
        yield
    except sqlite3.Error as error:
        if is_our_bug(error):
            raise
        raise catalog_error(path, error) from error
