"""`clipsearch locate`: where in each picture a text fits, as boxes in the upright picture's pixels.

The default is CLIP region search with the database's own model, through its numpy query model when that has an
image tower; `--detector hf:NAME_OR_DIR` runs an OWL-ViT or OWLv2 detector from transformers instead
(clipsearch.insight.detector).

CLIP embeds a whole picture, so a small object barely moves its vector; a crop around the object, scaled to the
model's size, looks to the model like a photo of just that object. The region search is coarse to fine, one
batched model call per step:

1. the whole picture and overlapping half-size windows (3 x 3 on a square, 3 x 5 on a 4:3 photo);
2. half-size windows inside the best of those (3 x 3);
3. occlusion: the best of those, with context around it (1.6 times its size), is scored again with each cell
   of a 6 x 6 grid greyed out in turn; the cells whose loss costs the score most hold the object, and their
   bounding box is the answer (the way Zeiler and Fergus probed what a network looks at);
4. that box, scored.

About 60 crops in five batched model calls a picture. The refined box comes first; the windows of steps 1 and 2 that do
not overlap it follow, best first (non-maximum suppression). Its limits: one object is refined (the others
are windows), boxes follow a grid of a sixth of the context's side, and an object much smaller than a twelfth
of the picture's short side is found only where the model can still see it at that scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from clipsearch.errors import ImageError, UsageError
from clipsearch.imaging.decode import decode_image
from clipsearch.search.embedding import QueryEmbedder, read_query_file
from clipsearch.search.results import SearchAnswer
from clipsearch.text import visible

NMS_IOU = 0.4  # boxes overlapping more than this with a better one are the same find
CONTEXT = 1.6  # the occlusion step looks at the best window grown by this much
GRID = 6  # cells a side that the occlusion step greys out in turn
# A cell belongs to the object when greying it out costs at least this share of the largest cost. Chosen on the
# small-object fixture (tests/small_objects.py) with the test model, and checked on scenes of another seed
# (docs/commands.md, "Where in a photo").
CELL_SHARE = 0.15


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def iou(self, other: Box) -> float:
        left, top = max(self.x, other.x), max(self.y, other.y)
        right, bottom = min(self.x + self.w, other.x + other.w), min(self.y + self.h, other.y + other.h)
        overlap = max(0, right - left) * max(0, bottom - top)
        union = self.area + other.area - overlap
        return overlap / union if union else 0.0

    def scaled(self, factor: float, width: int, height: int) -> Box:
        """The same centre, `factor` times the size, kept inside a width x height picture."""
        w, h = min(width, max(1, round(self.w * factor))), min(height, max(1, round(self.h * factor)))
        cx, cy = self.x + self.w / 2, self.y + self.h / 2
        x = min(max(0, round(cx - w / 2)), width - w)
        y = min(max(0, round(cy - h / 2)), height - h)
        return Box(x, y, w, h)

    def in_original(self, scale_x: float, scale_y: float) -> Box:
        """From decoded-picture pixels to the original (upright) picture's."""
        return Box(round(self.x * scale_x), round(self.y * scale_y), round(self.w * scale_x), round(self.h * scale_y))

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


def windows(area: Box, fraction: float = 0.5) -> list[Box]:
    """Square windows of `fraction` of the area's short side, overlapping by half, covering it edge to edge."""
    side = max(1, round(min(area.w, area.h) * fraction))
    across = 1 + math.ceil(max(0, area.w - side) / (side / 2))
    down = 1 + math.ceil(max(0, area.h - side) / (side / 2))
    xs = np.linspace(area.x, area.x + area.w - side, across).round().astype(int) if across > 1 else [area.x]
    ys = np.linspace(area.y, area.y + area.h - side, down).round().astype(int) if down > 1 else [area.y]
    return [Box(int(x), int(y), side, side) for y in ys for x in xs]


def non_maximum_suppression(scored: Sequence[tuple[float, Box]], limit: int) -> list[tuple[float, Box]]:
    kept: list[tuple[float, Box]] = []
    for score, box in sorted(scored, key=lambda item: -item[0]):
        if all(box.iou(other) <= NMS_IOU for _, other in kept):
            kept.append((score, box))
            if len(kept) == limit:
                break
    return kept


Scorer = Callable[[list[Box]], np.ndarray]  # boxes of the picture -> the text's cosine with each crop
# (a box, the cells of it to grey out, one at a time) -> the text's cosine with each occluded crop
OccludedScorer = Callable[[Box, list[Box]], np.ndarray]


def cells(area: Box, grid: int = GRID) -> list[Box]:
    """The grid x grid cells of an area, row by row."""
    xs = [area.x + round(area.w * i / grid) for i in range(grid + 1)]
    ys = [area.y + round(area.h * i / grid) for i in range(grid + 1)]
    return [Box(xs[i], ys[j], xs[i + 1] - xs[i], ys[j + 1] - ys[j]) for j in range(grid) for i in range(grid)]


def occlusion_box(context: Box, cost: np.ndarray, grid: int = GRID) -> Box | None:
    """The bounding box of the cells whose occlusion costs the score at least CELL_SHARE of the most any does."""
    if cost.max() <= 0:
        return None
    chosen = [cell for cell, value in zip(cells(context, grid), cost) if value >= CELL_SHARE * cost.max()]
    left, top = min(c.x for c in chosen), min(c.y for c in chosen)
    right, bottom = max(c.x + c.w for c in chosen), max(c.y + c.h for c in chosen)
    return Box(left, top, right - left, bottom - top)


def search_regions(width: int, height: int, score: Scorer, occluded: OccludedScorer,
                   limit: int = 3) -> list[tuple[float, Box]]:
    """The best `limit` boxes of a width x height picture for a text: the refined box first, then other windows."""
    whole = Box(0, 0, width, height)
    coarse = windows(whole)
    scored = list(zip(score([whole, *coarse]).tolist(), [whole, *coarse]))
    best = max(scored[1:], key=lambda item: item[0])[1] if coarse else whole
    fine = windows(best)
    fine_scored = list(zip(score(fine).tolist(), fine))
    best = max(fine_scored, key=lambda item: item[0])[1]
    context = best.scaled(CONTEXT, width, height)
    base = score([context])
    refined = occlusion_box(context, base[0] - occluded(context, cells(context))) or best
    first = (float(score([refined])[0]), refined)
    others = [item for item in scored + fine_scored + [(float(base[0]), context)] if item[1].iou(refined) <= NMS_IOU]
    return [first, *non_maximum_suppression(others, limit - 1)] if limit > 1 else [first]


MIN_SIDE = 32  # smaller pictures have nothing to crop
FINEST_WINDOW = 0.17  # the smallest crop, as a share of the short side (windows()): decoded so it is model-sized


@dataclass(frozen=True)
class Located:
    path: str
    label: str
    score: float
    box: Box
    rank: int  # 1: the best box in its picture
    width: int  # the upright picture's size, which the box is in
    height: int


@dataclass(frozen=True)
class Picture:
    image: Image.Image  # upright, maybe decoded at a reduced scale
    width: int  # the original upright picture's size
    height: int

    @property
    def scale_x(self) -> float:  # from the decoded pixels to the original picture's
        return self.width / self.image.width

    @property
    def scale_y(self) -> float:
        return self.height / self.image.height

    def located(self, path: str, text: str, found: list[tuple[float, Box]]) -> list[Located]:
        return [Located(path, text, float(value), box.in_original(self.scale_x, self.scale_y), rank, self.width,
                        self.height) for rank, (value, box) in enumerate(found, start=1)]


def open_picture(path: str, model_size: int) -> Picture:
    """A picture decoded large enough that its smallest crop still fills the model's input, or a UsageError."""
    data = read_query_file(path)
    try:
        decoded = decode_image(data, target_size=math.ceil(model_size / FINEST_WINDOW))
    except ImageError as error:
        raise UsageError(f"{visible(path)}: {error}") from error
    image, info = decoded.image, decoded.info
    if min(image.size) < MIN_SIDE:
        raise UsageError(f"{visible(path)}: {info.width}x{info.height} is too small to look inside")
    return Picture(image.convert("RGB"), info.width, info.height)


def _crop(image: Image.Image, box: Box) -> Image.Image:
    return image.crop((box.x, box.y, box.x + box.w, box.y + box.h))


def _occluded_crops(image: Image.Image, context: Box, holes: list[Box]) -> list[Image.Image]:
    """The context crop once per hole, with that hole filled with the crop's mean colour."""
    crop = _crop(image, context)
    mean = tuple(int(v) for v in np.asarray(crop).reshape(-1, 3).mean(axis=0))
    crops = []
    for hole in holes:
        occluded = crop.copy()
        occluded.paste(mean, (hole.x - context.x, hole.y - context.y, hole.x - context.x + hole.w,
                              hole.y - context.y + hole.h))
        crops.append(occluded)
    return crops


def checked_text(text: str) -> str:
    if not text.strip():
        raise UsageError("the text is empty: say what to look for, e.g. `clipsearch locate cat IMG_0042.jpg`")
    return text


def locate(embedder: QueryEmbedder, text: str, images: Iterable[str], top: int = 3,
           skipped: Callable[[str, str], None] = lambda path, reason: None) -> Iterator[Located]:
    """The best `top` boxes for `text` in each image, by CLIP region search with the database's model; an image
    that cannot be used is reported to `skipped` and passed over."""
    checked_text(text)
    target = embedder.texts([text])[0]
    for path in images:
        try:
            picture = open_picture(path, embedder.image_size)
        except UsageError as error:
            skipped(path, str(error).removeprefix(f"{visible(path)}: "))
            continue

        def score(boxes: list[Box], image: Image.Image = picture.image):
            return embedder.pictures([_crop(image, box) for box in boxes]) @ target

        def occluded(context: Box, holes: list[Box], image: Image.Image = picture.image):
            return embedder.pictures(_occluded_crops(image, context, holes)) @ target

        found = search_regions(picture.image.width, picture.image.height, score, occluded, top)
        yield from picture.located(path, text, found)


def with_boxes(embedder: QueryEmbedder, answer: SearchAnswer) -> SearchAnswer:
    """`query --where`: each result with the box where its query fits best (None where it cannot be looked at)."""
    boxes: dict[tuple[str | None, str], list[int]] = {}
    for query in dict.fromkeys(result.query for result in answer.results):
        paths = [result.path for result in answer.results if result.query == query]
        for found in locate(embedder, query or "", paths, top=1):
            boxes[(query, found.path)] = found.box.as_list()
    return SearchAnswer([replace(result, box=boxes.get((result.query, result.path))) for result in answer.results],
                        answer.missing)
