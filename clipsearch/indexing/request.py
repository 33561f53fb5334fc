"""What indexing is asked to do (IndexOptions), how far along it is (Reporter), and what it did (IndexStats).

Only progress travels through the Reporter: what a run has to say in words (waiting for the lock, continuing a
switch, the engine chosen) goes to the `logging` logger "clipsearch", which the CLI prints (clipsearch.cli.messages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clipsearch.indexing.roots import OptionChanges
from clipsearch.models.device import Device, Engine, Precision

if TYPE_CHECKING:
    from clipsearch.indexing.cluster import RayOptions


@dataclass(frozen=True)
class IndexOptions:
    roots: tuple[str, ...] = ()  # none: every root indexed before
    changes: OptionChanges = field(default_factory=OptionChanges)  # crawl options given on the command line
    model: str | None = None
    pretrained: str | None = None
    reindex: bool = False
    device: Device = Device.auto
    precision: Precision = Precision.auto
    engine: Engine = Engine.auto
    batch_size: int | None = None
    workers: int | None = None
    wait_for_lock: bool = True
    thumbnails: bool = False  # make the thumbnails of newly decoded photos while they are in memory
    ray: RayOptions | None = None  # embed on a Ray cluster (clipsearch.indexing.cluster)
    regions: bool | None = None  # --regions / --no-regions; None: as the database says


@dataclass
class IndexStats:
    indexed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    skipped: int = 0  # could not be used now, including the remembered ones below
    skipped_remembered: int = 0  # failed before and unchanged since: not tried again
    ignored: dict[str, int] = field(default_factory=dict)  # "RAW", "video": passed over by kind
    seconds: float = 0.0
    interrupted: bool = False
    model: str = ""
    switched_to: str | None = None  # a model switch completed by this run


@dataclass
class Reporter:
    """How far along a run is, for a progress display; the defaults show nothing."""

    skipped: Callable[[str, str], None] = lambda path, reason: None
    started: Callable[[int], None] = lambda total: None  # files to read, once the crawl is done
    phase: Callable[[str], None] = lambda what: None  # "loading the model", "embedding", ...
    advanced: Callable[[int], None] = lambda count: None  # files settled (decoded, reused or skipped)
