"""The region grid of `index --regions`: which crops of each photo are embedded besides the photo itself.

grid x grid overlapping square windows, each 2 / (grid + 1) of the photo's short side, spread evenly over it:
for grid 3 on a 4:3 photo, nine windows half as tall as the photo. A small object fills a good part of at
least one of them, so its region vector is close to a description of it. The grid was chosen by measuring
recall@10 of small-object queries (docs/commands.md, "Where in a photo").
"""

from __future__ import annotations

DEFAULT_GRID = 3


def grid_boxes(width: int, height: int, grid: int) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the windows of a width x height picture, row by row."""
    side = max(1, round(min(width, height) * 2 / (grid + 1)))

    def starts(length: int) -> list[int]:
        if grid == 1 or length <= side:
            return [max(0, (length - side) // 2)] * grid
        return [round(i * (length - side) / (grid - 1)) for i in range(grid)]

    return [(x, y, min(side, width), min(side, height)) for y in starts(height) for x in starts(width)]
