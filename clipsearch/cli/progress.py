"""How `clipsearch index` shows its progress: a bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from clipsearch.cli.app import err, say
from clipsearch.indexing.progress import Reporter
from clipsearch.text import visible


@contextlib.contextmanager
def index_reporter(quiet: bool) -> Iterator[Reporter]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    def skipped(path: str, reason: str) -> None:
        say(f"skipped {visible(path)}: {reason}")

    def message(text: str) -> None:
        if not quiet:
            say(text)

    if quiet or not err.is_terminal:
        yield Reporter(message=message, skipped=skipped)
        return
    progress = Progress(
        TextColumn("indexing"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err, transient=True,
    )
    task = progress.add_task("index", total=None, rate="")

    def started(total: int) -> None:
        progress.update(task, total=total)

    def advanced(count: int) -> None:
        progress.advance(task, count)
        elapsed = progress.tasks[0].elapsed or 0
        if elapsed:
            progress.update(task, rate=f"{progress.tasks[0].completed / elapsed:.1f} img/s")

    with progress:
        yield Reporter(message=lambda text: progress.console.print(text, markup=False),
                       skipped=lambda p, r: progress.console.print(f"skipped {visible(p)}: {r}", markup=False),
                       started=started, advanced=advanced)
