"""What the core has to say, on stderr: the one handler the CLI puts on the `logging` logger "clipsearch".

The lock ("waiting for ... to finish writing"), a model switch ("continuing the switch to ..."), the roots, the
OpenVINO engine and the Ray session each log what the user should hear at INFO, on a module logger of their own
(`logging.getLogger(__name__)`), instead of taking a `say` callback threaded down from the CLI through five layers.
Why `logging` rather than one reporter object passed down: those messages come from places a reporter would have
to reach as a parameter (a lock taken by three callers, an engine chosen on whichever thread first needs the
model, a signal handler); a module logger is there already. It is also what a user of the Python API expects:
`Library.index` says the same things through the standard mechanism, shown by `logging.basicConfig(level=INFO)`
and silent by default, so the library never prints behind its caller's back. Progress (counts and phases for a
bar) is structured rather than words and stays a Reporter (clipsearch.indexing.request).

While a command runs inside `messages_on_stderr`, each record prints as `say` prints: one line on stderr,
exactly as given; through the progress bar's console while one is drawn, so that the bar does not draw over it.
--quiet shows none of them: it raises the handler's level to WARNING, and nothing in clipsearch logs above INFO.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from clipsearch.cli.app import say

LOGGER = "clipsearch"


class _Say(logging.Handler):
    def __init__(self, print_line: Callable[[str], None], level: int) -> None:
        super().__init__(level)
        self._print_line = print_line

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._print_line(record.getMessage())
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def messages_on_stderr(print_line: Callable[[str], None] = say, *, quiet: bool = False) -> Iterator[None]:
    """Within the block, what clipsearch logs at INFO and above is printed by `print_line` (none of it if quiet)."""
    logger = logging.getLogger(LOGGER)
    handler = _Say(print_line, logging.WARNING if quiet else logging.INFO)
    previous = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
