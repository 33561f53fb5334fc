"""Options that several commands share, declared once."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from clipsearch.cli.app import TRACEBACK_KEY, ValueMayBeOmitted, non_empty_path
from clipsearch.cli.app import DbOption as DbOption  # declared beside the app's own --db (before the command)
from clipsearch.config import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    DEFAULT_RESULTS,
    DataDir,
    resolve_data_dir,
)
from clipsearch.models.device import Device, Engine, Precision
from clipsearch.output.formats import OutputFormat, choose_listing_format
from clipsearch.output.preview import PreviewMode
from clipsearch.output.sheet import DEFAULT_CELL, DEFAULT_COLUMNS
from clipsearch.search.request import QueryOptions, SortKey, query_options


def finite(value: float | None) -> float | None:
    """Reject nan and infinity, which every range check lets through."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number")
    return value


def _remember_traceback(ctx: typer.Context, value: bool) -> bool:
    ctx.meta[TRACEBACK_KEY] = value
    return value


TracebackOption = Annotated[bool, typer.Option("--traceback", callback=_remember_traceback, is_eager=True,
                                               help="On error, show the full Python traceback.")]
ModelOption = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="NAME|CONFIG.json|hf:REPO|hf:DIR",
    help=f"open_clip model name or model config JSON; or a Hugging Face transformers CLIP-family model, hf:REPO "
         f"or hf:DIRECTORY. Default: the database's model, else {DEFAULT_MODEL}.")]
PretrainedOption = Annotated[str | None, typer.Option(
    "--pretrained", metavar="TAG|PATH|REVISION",
    help=f"Weights: an open_clip pretrained tag or a local checkpoint file; for hf:REPO, a revision (branch, tag or "
         f"commit). Default: the database's, else {DEFAULT_PRETRAINED}.")]
DeviceOption = Annotated[Device, typer.Option("--device", help="Where to run the model: auto picks cuda, then mps, "
                                                               "then cpu.")]
PrecisionOption = Annotated[Precision, typer.Option(
    "--precision", help="auto: fp16 on CUDA; on a CPU with OpenVINO, the fastest of bf16, int8 and fp32 that "
                        "the CPU supports (timed once per CPU), each checked against the model; on a CPU with "
                        "torch, int8 weights for ViT MLPs.")]
EngineOption = Annotated[Engine, typer.Option(
    "--engine", envvar="CLIPSEARCH_ENGINE", help="What runs the image tower while indexing: auto takes OpenVINO on a "
                                                 "CPU when it is installed, else torch.")]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="How many results per query.")]
MinScoreOption = Annotated[float | None, typer.Option("--min-score", callback=finite,
                                                      help="Drop results below this cosine score.")]
WithinOption = Annotated[list[Path] | None, typer.Option(
    "--in", metavar="DIR", parser=non_empty_path(),
    help="Only results under this folder; repeat for several (results under any of them).")]
FormatOption = Annotated[OutputFormat | None, typer.Option(
    "--format", "-f", help="Output format (null: NUL-terminated paths, as -0). Default: table on a terminal, "
                           "paths in a pipe.")]
NullOption = Annotated[bool, typer.Option("--null", "-0", help="NUL-separated paths, for `xargs -0`.")]
AfterOption = Annotated[str | None, typer.Option(
    "--after", metavar="DATE", help="Only photos taken on or after DATE: 2023, 2023-06 or 2023-06-14.")]
BeforeOption = Annotated[str | None, typer.Option(
    "--before", metavar="DATE", help="Only photos taken before DATE (the first day of a year or month given).")]
UndatedOption = Annotated[bool, typer.Option(
    "--undated", help="With --after/--before: also photos whose capture time is unknown.")]
CameraOption = Annotated[str | None, typer.Option(
    "--camera", metavar="TEXT", help="Only photos whose EXIF camera make or model contains TEXT (any case).")]
TagOption = Annotated[list[str] | None, typer.Option(
    "--tag", metavar="TAG", help="Only photos with this tag (see `clipsearch tag`); repeatable: all must hold.")]
NoTagOption = Annotated[list[str] | None, typer.Option(
    "--no-tag", metavar="TAG", help="Leave out photos with this tag; repeatable.")]
SortOption = Annotated[SortKey, typer.Option(
    "--sort", help="The order of the results, once the best are found: by score, capture date or path.")]
AndOption = Annotated[list[str] | None, typer.Option(
    "--and", metavar="TEXT[:W]", help="Also this, added to the query (weight W, default 1); repeatable.")]
NotOption = Annotated[list[str] | None, typer.Option(
    "--not", metavar="TEXT[:W]", help="Away from this, subtracted from the query (weight W, default 0.5); "
                                      "repeatable.")]
LikeOption = Annotated[list[str] | None, typer.Option(
    "--like", metavar="IMAGE[:W]", help="Also like this image, added to the query (weight W, default 1); "
                                        "repeatable.")]
ContactSheetOption = Annotated[Path | None, typer.Option(
    "--contact-sheet", metavar="FILE", parser=non_empty_path(dir_okay=False),
    help="Also draw the results in one image (.jpg, .png or .webp): FILE, or FILE-1, FILE-2... for several "
         "queries.")]
ColumnsOption = Annotated[int, typer.Option("--columns", min=1, max=50, help="Columns of a contact sheet.")]
CellSizeOption = Annotated[int, typer.Option("--cell-size", min=64, max=2048, metavar="PX",
                                             help="The side of a contact sheet's cells, in pixels.")]
PreviewOption = Annotated[PreviewMode | None, typer.Option(
    "--preview", metavar="[kitty|iterm|sixel|blocks]", show_default=False,
    click_type=ValueMayBeOmitted("auto", [mode.value for mode in PreviewMode]),
    help="Show each result's thumbnail in the terminal: the best protocol it speaks (--preview alone), or the one "
         "named.")]
LinkToOption = Annotated[Path | None, typer.Option(
    "--link-to", metavar="DIR", parser=non_empty_path(file_okay=False),
    help="Also make DIR a folder of symbolic links to the results, named by rank (01-IMG_0042.jpg).")]
NoWaitOption = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another process is writing "
                                                              "the database, instead of waiting.")]

DEFAULT_LIMIT = DEFAULT_RESULTS


def data_dir(db: Path | None) -> DataDir:
    return resolve_data_dir(db)
def is_ray_address(word: str) -> bool:
    """auto, local, or an address: every Ray address has its port (HOST:PORT, ray://HOST:PORT)."""
    return word in ("auto", "local") or ":" in word


RayOption = Annotated[str | None, typer.Option(
    "--ray", metavar="[local|auto|ADDRESS]", show_default=False,
    click_type=ValueMayBeOmitted("auto", takes=is_ray_address),
    help="Embed on a Ray cluster (needs the ray extra): local starts Ray on this machine, auto (or --ray alone) "
         "joins the cluster `ray start` set up, an ADDRESS (HOST:PORT) connects to one. "
         "This process crawls and writes.")]
RayShipBytesOption = Annotated[bool, typer.Option(
    "--ray-ship-bytes", help="Read the files here and send their bytes to the Ray workers, for nodes that do not "
                             "mount the library.")]
RayActorsOption = Annotated[int | None, typer.Option(
    "--ray-actors", min=1, help="Ray actors, each holding the model (default: one per GPU, else one per two "
                                "CPUs).")]
WhereOption = Annotated[bool, typer.Option(
    "--where", help="Also find where in each result the text fits best (as `clipsearch locate` does): a box in "
                    "json, jsonl, csv and tsv, and drawn on --contact-sheet.")]


# Bundles of options (clipsearch.cli.bundles): each declared once here, and given to a command as one value by
# `@bundled("name", Bundle)`. A field's order is its option's place in --help.

@dataclass(frozen=True)
class FilterOptions:
    """Which photos may be results: the filters `query` and `similar` share."""

    within: WithinOption = None
    after: AfterOption = None
    before: BeforeOption = None
    undated: UndatedOption = False
    camera: CameraOption = None
    tag: TagOption = None
    no_tag: NoTagOption = None


@dataclass(frozen=True)
class SearchOptions:
    """How many results, which, in what order, and the terms added to a query: `query` and `similar`."""

    limit: LimitOption = DEFAULT_LIMIT
    min_score: MinScoreOption = None
    filters: FilterOptions = field(default_factory=FilterOptions)
    sort: SortOption = SortKey.score
    and_: AndOption = None
    not_: NotOption = None

    def query_options(self, *, include_self: bool = False, like: list[str] | None = None) -> QueryOptions:
        f = self.filters
        return query_options(limit=self.limit, min_score=self.min_score, within=f.within or (),
                             include_self=include_self, after=f.after, before=f.before, undated=f.undated,
                             camera=f.camera, tags=f.tag or (), no_tags=f.no_tag or (), sort=self.sort,
                             also=self.and_ or (), without=self.not_ or (), like=like or ())


@dataclass(frozen=True)
class Listing:
    """The format of what a command writes on stdout."""

    output_format: FormatOption = None
    null: NullOption = False

    def listing_format(self) -> OutputFormat:
        """The format for commands that list something other than search results (no html)."""
        return choose_listing_format(self.output_format, self.null, sys.stdout.isatty())


@dataclass(frozen=True)
class Sheet:
    """A contact sheet of the results, beside them: `query`, `similar` and `locate`."""

    contact_sheet: ContactSheetOption = None
    columns: ColumnsOption = DEFAULT_COLUMNS
    cell_size: CellSizeOption = DEFAULT_CELL


@dataclass(frozen=True)
class Presentation:
    """What `query` and `similar` show: the results on stdout, and links, a contact sheet and previews beside."""

    listing: Listing = field(default_factory=Listing)
    link_to: LinkToOption = None
    sheet: Sheet = field(default_factory=Sheet)
    preview: PreviewOption = None
    where: bool = False  # query --where (its own option): a box for each result (clipsearch.insight.locate)
