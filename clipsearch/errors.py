"""The errors a user can cause, and the exit codes the CLI maps them to (as grep does)."""

from __future__ import annotations

import errno
import math
import os
from enum import IntEnum


class ExitCode(IntEnum):
    FOUND = 0
    NOTHING_FOUND = 1
    ERROR = 2
    INTERRUPTED = 130


class ClipsearchError(Exception):
    """An error the user can act on: the CLI prints its message as one line and exits 2."""

    exit_code: ExitCode = ExitCode.ERROR


class UsageError(ClipsearchError):
    """Arguments that make no sense together, or name something that does not exist."""


class CatalogError(ClipsearchError):
    """The catalogue cannot be opened, read or written (corrupt, newer schema, read-only, full)."""


class ModelError(ClipsearchError):
    """The model cannot be found, downloaded or loaded."""


class ModelMismatchError(ClipsearchError):
    """The database was indexed with another model than the one asked for."""


class LockedError(ClipsearchError):
    """Another clipsearch process is writing to the same database."""


class ImageError(ClipsearchError):
    """One file cannot be used as an image; indexing reports it and goes on."""


class NotAnImageError(ImageError):
    """The file's content is not an image format we can decode (whatever its name says)."""


class TruncatedImageError(ImageError):
    """The file ends before the image data does, or its data is corrupt."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit (a decompression bomb, or a huge scan)."""

    def __init__(self, message: str, megapixels: float | None = None) -> None:
        super().__init__(message)
        self.megapixels = megapixels  # set when the limit was --max-megapixels: a higher one would take it


class ImageTooSmallError(ImageError):
    """The image is too small to carry any meaning for the model."""


class UnreadableFileError(ImageError):
    """The file cannot be read: permissions, a vanished file, a directory, an I/O error."""


def describe_os_error(error: OSError) -> str:
    """An OSError as a few lower-case words for a one-line message ("permission denied", "symlink loop")."""
    if isinstance(error, PermissionError):
        return "permission denied"
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such file or directory"
    return " ".join((error.strerror or str(error)).lower().split())


def env_number(name: str, default: float, minimum: float, integer: bool = False) -> float:
    """The number environment variable `name` holds (unset or empty: `default`), checked as an option's value is:
    anything else is a UsageError naming the variable, never an internal error where the code first reads it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum:
        kind = "a whole number" if integer else "a number"
        raise UsageError(f"{name}={raw}: it must be {kind} >= {minimum:g} (or unset, for {default:g})")
    return value
