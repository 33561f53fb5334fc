"""Pictures from outside the catalogue (a picture dropped on the page, `similar` of any file), decoded where a
decoder cannot take the caller down: a child process of its own, with a time limit and an address-space limit.

A long-running server decodes bytes anyone with the page can send. Whatever the header checks miss (a decoder
bomb, a crash in a decoder library, a decode that never ends) then costs only the child: its memory is given
back when it exits, a decoder that asks for more than its address space gets a MemoryError, and one that never
ends is killed. What comes back is small: the model's pixels, or a thumbnail.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from clipsearch.config import DEFAULT_MAX_MEGAPIXELS
from clipsearch.errors import ImageError, ImageTooLargeError, TruncatedImageError, env_number
from clipsearch.imaging.decode import DECODE_BUDGET_BYTES, check_image, decode_image

TIME_LIMIT_ENV = "CLIPSEARCH_DECODE_TIME_LIMIT_S"  # seconds one file may take to decode in a child process
DEFAULT_TIME_LIMIT_S = 120.0
START_LIMIT_S = 120.0  # for a child to start: a fresh interpreter importing Pillow and numpy
# What the child may map beyond what it holds once started: the decode budget, twice (the decoded picture and its
# RGB copy), and room for the decoder's own buffers.
ADDRESS_SPACE_HEADROOM = 2 * DECODE_BUDGET_BYTES + (512 << 20)


def death(exit_code: int | None) -> str:
    """How a child process ended, in words."""
    if exit_code is None or exit_code >= 0:
        return f"exit code {exit_code}"
    try:
        cause = signal.Signals(-exit_code)
    except ValueError:
        return f"signal {-exit_code}"
    meanings = {signal.SIGKILL: "killed, likely out of memory", signal.SIGXCPU: "over its CPU time limit",
                signal.SIGSEGV: "a crash in a decoder library", signal.SIGBUS: "a crash in a decoder library"}
    return meanings.get(cause, cause.name)


def limit_address_space(headroom: int = ADDRESS_SPACE_HEADROOM) -> None:
    """In a child: allow it what it maps now plus `headroom`, so that a decoder bomb fails there, not the machine."""
    try:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return  # not Linux: the time limit and the header checks still hold
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def model_pixels(data: bytes, image_size: int, resize_mode: str, interpolation: str,
                 max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> Any:
    """The model's input pixels (uint8 HxWx3, see prepare_pixels) of an untrusted picture, decoded in a child."""
    return _in_child(_pixels, data, image_size, resize_mode, interpolation, max_megapixels)


def thumbnail_bytes(data: bytes, size: int) -> bytes:
    """A JPEG thumbnail (see make_thumbnail) of an untrusted picture, decoded in a child."""
    return _in_child(_thumbnail, data, size)


def _pixels(data: bytes, image_size: int, resize_mode: str, interpolation: str, max_megapixels: float) -> Any:
    from clipsearch.imaging.pixels import prepare_pixels

    check_image(data, max_megapixels)  # also loads the decoders, before the limit
    limit_address_space()
    decoded = decode_image(data, target_size=image_size, max_megapixels=max_megapixels)
    return prepare_pixels(decoded.image, image_size, resize_mode, interpolation)


def _thumbnail(data: bytes, size: int) -> bytes:
    from clipsearch.imaging.thumbnails import make_thumbnail

    check_image(data)
    limit_address_space()
    return make_thumbnail(decode_image(data, target_size=size).image, size)


def _child(connection: Connection, function: Callable[..., Any], args: tuple) -> None:
    connection.send(("started",))
    try:
        connection.send(("done", function(*args)))
    except ImageError as error:
        connection.send(("failed", type(error), str(error), getattr(error, "megapixels", None)))
    except MemoryError:
        connection.send(("failed", ImageTooLargeError, "not enough memory to decode it", None))
    connection.close()


def _in_child(function: Callable[..., Any], *args: Any) -> Any:
    """function(*args) in a fresh child process; its ImageError raised here, and its death or overrun as one."""
    time_limit = env_number(TIME_LIMIT_ENV, DEFAULT_TIME_LIMIT_S, minimum=0.001)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no model, no threads to fork
    ours, theirs = context.Pipe()
    child = context.Process(target=_child, args=(theirs, function, args), daemon=True)
    child.start()
    theirs.close()
    try:
        for step, limit in enumerate((START_LIMIT_S, time_limit)):
            if not ours.poll(limit):
                child.kill()
                child.join()
                if step == 0:
                    raise TruncatedImageError(f"the decoding child process did not start in {limit:g} s")
                raise TruncatedImageError(f"decoding it took over {limit:g} s ({TIME_LIMIT_ENV})")
            message = ours.recv()
    except EOFError:  # the child died
        child.join()
        raise TruncatedImageError(f"decoding it killed the decoder ({death(child.exitcode)})") from None
    finally:
        ours.close()
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()
    if message[0] == "done":
        return message[1]
    _, kind, text, megapixels = message
    if kind is ImageTooLargeError:
        raise ImageTooLargeError(text, megapixels=megapixels)
    raise kind(text)
