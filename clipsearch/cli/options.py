"""Options that several commands share, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipsearch.cli.app import TRACEBACK_KEY
from clipsearch.config import DB_ENV_VAR, DEFAULT_MODEL, DEFAULT_PRETRAINED, DEFAULT_RESULTS, DataDir, resolve_data_dir
from clipsearch.models.device import Device, Precision
from clipsearch.output.formats import OutputFormat


def _remember_traceback(ctx: typer.Context, value: bool) -> bool:
    ctx.meta[TRACEBACK_KEY] = value
    return value


DbOption = Annotated[Path | None, typer.Option(
    "--db", envvar=DB_ENV_VAR, show_envvar=True, file_okay=False,
    help="Database folder (default: $XDG_DATA_HOME/clipsearch, i.e. ~/.local/share/clipsearch).")]
TracebackOption = Annotated[bool, typer.Option("--traceback", callback=_remember_traceback, is_eager=True,
                                               help="On error, show the full Python traceback.")]
ModelOption = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="NAME|CONFIG.json",
    help=f"open_clip model name, or the path to a model config JSON. Default: the database's model, "
         f"else {DEFAULT_MODEL}.")]
PretrainedOption = Annotated[str | None, typer.Option(
    "--pretrained", metavar="TAG|PATH",
    help=f"Weights: an open_clip pretrained tag, or a local checkpoint file. Default: the database's, "
         f"else {DEFAULT_PRETRAINED}.")]
DeviceOption = Annotated[Device, typer.Option("--device", help="Where to run the model: auto picks cuda, then mps, "
                                                               "then cpu.")]
PrecisionOption = Annotated[Precision, typer.Option(
    "--precision", help="auto: fp16 on CUDA; on a CPU, int8 weights for the image tower's transformer MLPs "
                        "(about 2x faster, embeddings within 0.9998 cosine of fp32).")]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="How many results per query.")]
MinScoreOption = Annotated[float | None, typer.Option("--min-score", help="Drop results below this cosine score.")]
WithinOption = Annotated[Path | None, typer.Option("--in", help="Only results under this folder.")]
FormatOption = Annotated[OutputFormat | None, typer.Option(
    "--format", "-f", help="Output format (null: NUL-terminated paths, as -0). Default: table on a terminal, "
                           "paths in a pipe.")]
NullOption = Annotated[bool, typer.Option("--null", "-0", help="NUL-separated paths, for `xargs -0`.")]
NoWaitOption = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another process is writing "
                                                              "the database, instead of waiting.")]

DEFAULT_LIMIT = DEFAULT_RESULTS


def data_dir(db: Path | None) -> DataDir:
    return resolve_data_dir(db)
