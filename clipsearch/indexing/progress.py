"""What indexing is asked to do, how it tells the caller what is happening, and what it did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from clipsearch.config import DEFAULT_MAX_MEGAPIXELS
from clipsearch.indexing.crawl import CrawlOptions
from clipsearch.models.device import Device, Precision


@dataclass(frozen=True)
class IndexOptions:
    roots: tuple[str, ...]
    crawl: CrawlOptions = field(default_factory=CrawlOptions)
    model: str | None = None
    pretrained: str | None = None
    reindex: bool = False
    device: Device = Device.auto
    precision: Precision = Precision.auto
    batch_size: int | None = None
    workers: int | None = None
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    wait_for_lock: bool = True


@dataclass
class IndexStats:
    indexed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    model: str = ""


@dataclass
class Reporter:
    """How the core tells the CLI what is happening; the defaults say nothing."""

    message: Callable[[str], None] = lambda text: None
    skipped: Callable[[str, str], None] = lambda path, reason: None
    started: Callable[[int], None] = lambda total: None
    advanced: Callable[[int], None] = lambda count: None
