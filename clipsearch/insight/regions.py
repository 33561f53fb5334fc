"""Boxes, and the CLIP region search that `clipsearch locate` runs: where in a picture a text fits best.

CLIP embeds a whole picture, so a small object barely moves its vector; a crop around the object, scaled to the
model's size, looks to the model like a photo of just that object. The search is coarse to fine, one batched
model call per step:

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

NMS_IOU = 0.4  # boxes overlapping more than this with a better one are the same find
CONTEXT = 1.6  # the occlusion step looks at the best window grown by this much
GRID = 6  # cells a side that the occlusion step greys out in turn
# A cell belongs to the object when greying it out costs at least this share of the largest cost. Chosen on the
# small-object fixture (tests/small_objects.py) with the test model, and checked on scenes of another seed
# (README, "Where in a photo").
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
