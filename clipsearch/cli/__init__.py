"""The command line: parse arguments, call the core, render. Nothing else.

app        the Typer app and the one error boundary around every command
options    options several commands share, and their bundles (filters, presentation)
bundles    @bundled: a dataclass's fields as a command's options, given to it as one value
indexing   index, forget
searching  query, similar
admin      status, serve
web        web (the local web page)
insight    classify, tag, tags, duplicates
locating   locate
progress   index's progress display
messages   the one handler that prints clipsearch's log messages on stderr, as `say` does
presenting what query and similar show besides their results: sheets, previews, links, HTML, warnings

Core modules are imported inside the commands, and torch only where a model is loaded,
so `--help`, `status` and shell completion stay fast.
"""

from clipsearch.cli import admin, indexing, insight, locating, searching, web  # noqa: F401 (each registers its commands)
from clipsearch.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
