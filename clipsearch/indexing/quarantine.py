"""Suspects, decoded where they cannot take the run down: a child process of their own.

A file that was being decoded when a run died may be what killed it: an out-of-memory kill, a crash
in a decoder library, a decode that never ends. The next run decodes such files in a child process,
one after another, each within a time limit. If the child dies, or runs out of time, the file it was
on is named as the cause, recorded as skipped until it changes, and the rest go on in a new child. A
file is blamed only for a death it was alone in: the user's `kill -9` of the whole run blames nothing.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection

from clipsearch.errors import ImageError, ImageTooLargeError, env_number
from clipsearch.imaging.decode import decode_image, read_file
from clipsearch.imaging.isolated import DEFAULT_TIME_LIMIT_S, START_LIMIT_S, TIME_LIMIT_ENV, death
from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.indexing.prepare import Prepared, Task, limit_kind, region_crops
from clipsearch.models.preprocessing import Preprocessing


def _decode_files(connection: Connection, tasks: list[Task], settings: Preprocessing) -> None:
    """The child: decode each file, saying which one it is on before it starts."""
    for number, task in enumerate(tasks):
        connection.send(("start", number))
        try:
            # As the worker threads do (prepare.make_preparer): large enough for the region crops too, if asked.
            size = settings.image_size * (task.regions + 1) // 2 if task.regions else settings.image_size
            decoded = decode_image(read_file(task.found.path), target_size=size, max_megapixels=task.max_megapixels)
            pixels = prepare_pixels(decoded.image, settings.image_size, settings.resize_mode, settings.interpolation)
            info = decoded.info
            crops, boxes = region_crops(decoded, settings, task.regions) if task.regions else (None, ())
            connection.send(("done", number, pixels, info.width, info.height, info.taken_at, info.camera_make,
                             info.camera_model, crops, boxes))
        except ImageTooLargeError as error:
            connection.send(("failed", number, str(error), limit_kind(error)))
        except ImageError as error:
            connection.send(("failed", number, str(error), "bad"))
    connection.send(("end",))


def decode_in_quarantine(tasks: Sequence[tuple[Task, str]], settings: Preprocessing) -> Iterator[Prepared]:
    """(task, content hash) pairs, decoded in child processes; one Prepared for each, in order."""
    time_limit = env_number(TIME_LIMIT_ENV, DEFAULT_TIME_LIMIT_S, minimum=0.001)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch, no threads to fork
    remaining = list(tasks)
    while remaining:
        ours, theirs = context.Pipe()
        child = context.Process(target=_decode_files, args=(theirs, [t for t, _ in remaining], settings), daemon=True)
        child.start()
        theirs.close()
        current: int | None = None
        timed_out = False
        try:
            while True:
                if not ours.poll(time_limit if current is not None else START_LIMIT_S):
                    timed_out = True
                    child.kill()
                    raise EOFError
                message = ours.recv()
                if message[0] == "end":
                    remaining = []
                    break
                current = message[1]
                task, digest = remaining[current]
                if message[0] == "done":
                    yield Prepared(task.found, digest, *message[2:8], region_pixels=message[8],
                                   region_boxes=message[9])
                elif message[0] == "failed":
                    yield Prepared(task.found, error=message[2], error_kind=message[3])
        except EOFError:  # the child died, or ran out of time, while decoding remaining[current]
            child.join()
            if current is None:
                raise RuntimeError(f"the decoding child process could not start ({death(child.exitcode)})") from None
            task, _ = remaining[current]
            cause = f"over {time_limit:g} s" if timed_out else death(child.exitcode)
            yield Prepared(task.found, error=f"decoding it killed the decoder ({cause}); retried when the file "
                                             "changes", error_kind="crash")
            remaining = remaining[current + 1:]
        finally:
            ours.close()
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
