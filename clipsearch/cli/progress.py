"""How `clipsearch index` shows its progress: a live bar on a terminal, a plain line every ten seconds elsewhere.

The rate and the time left count only files settled since the model started embedding: the seconds
spent importing and loading it are not part of the rate at which a library is indexed.
What the run says in words (clipsearch.cli.messages) prints through the bar's console, above the bar.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from clipsearch.cli.app import err, say
from clipsearch.cli.messages import messages_on_stderr
from clipsearch.indexing.request import Reporter
from clipsearch.text import visible

PLAIN_PROGRESS_INTERVAL_S = 10.0


class _Rate:
    """Files per second since embedding began, and the time left at that rate."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0
        self._since: float | None = None
        self._done_at_start = 0

    def start(self) -> None:
        if self._since is None:
            self._since, self._done_at_start = time.monotonic(), self.done

    def per_second(self) -> float | None:
        if self._since is None:
            return None
        elapsed = time.monotonic() - self._since
        counted = self.done - self._done_at_start
        return counted / elapsed if elapsed > 1.0 and counted else None

    def describe(self) -> str:
        rate = self.per_second()
        if rate is None:
            return ""
        text = f"{rate:.1f} images/s"
        if self.total is not None and self.total > self.done:
            text += f", about {_duration((self.total - self.done) / rate)} left"
        return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@contextlib.contextmanager
def index_reporter(quiet: bool) -> Iterator[Reporter]:
    def skipped(path: str, reason: str) -> None:
        say(f"skipped {visible(path)}: {reason}")

    if quiet:
        with messages_on_stderr(quiet=True):
            yield Reporter(skipped=skipped)
    elif err.is_terminal:
        with _live_reporter() as reporter:
            yield reporter
    else:
        with messages_on_stderr():
            yield _plain_reporter(skipped)


def _plain_reporter(skipped) -> Reporter:
    """For logs (cron, nohup, CI): what happens, and every ten seconds a line of counts, rate and time left."""
    rate = _Rate()
    last = [time.monotonic()]

    def started(total: int) -> None:
        rate.total = total

    def advanced(count: int) -> None:
        rate.done += count
        if time.monotonic() - last[0] >= PLAIN_PROGRESS_INTERVAL_S:
            last[0] = time.monotonic()
            say(f"indexing: {rate.done}/{rate.total} files" + (f", {rate.describe()}" if rate.describe() else ""))

    def phase(what: str) -> None:
        if what == "embedding":
            rate.start()
        else:
            say(what)

    return Reporter(skipped=skipped, started=started, phase=phase, advanced=advanced)


@contextlib.contextmanager
def _live_reporter() -> Iterator[Reporter]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    rate = _Rate()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), console=err, transient=True)
    task = progress.add_task("crawling", total=None, rate="")

    def started(total: int) -> None:
        rate.total = total
        progress.update(task, total=total, description="reading")

    def advanced(count: int) -> None:
        rate.done += count
        progress.update(task, advance=count, rate=rate.describe())

    def phase(what: str) -> None:
        if what == "embedding":
            rate.start()
        progress.update(task, description=what)

    print_line = progress.console.print
    with progress, messages_on_stderr(lambda text: print_line(text, markup=False, highlight=False)):
        yield Reporter(skipped=lambda p, r: print_line(f"skipped {visible(p)}: {r}", markup=False, highlight=False),
                       started=started, phase=phase, advanced=advanced)
