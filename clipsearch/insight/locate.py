"""`clipsearch locate`: where in each picture a text fits, as boxes in the upright picture's pixels.

The default is CLIP region search (clipsearch.insight.regions) with the database's own model, through its
numpy query model when that has an image tower; `--detector hf:NAME_OR_DIR` runs an OWL-ViT or OWLv2 detector
from transformers instead (clipsearch.insight.detector).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from clipsearch.errors import ImageError, UsageError
from clipsearch.imaging.decode import decode_image
from clipsearch.insight.regions import Box, search_regions
from clipsearch.search.embedding import QueryEmbedder, read_query_file
from clipsearch.search.results import SearchAnswer
from clipsearch.text import visible

MIN_SIDE = 32  # smaller pictures have nothing to crop
FINEST_WINDOW = 0.17  # the smallest crop, as a share of the short side (regions.py): decoded so it is model-sized


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
