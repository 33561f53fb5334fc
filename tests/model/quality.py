"""The test model's quality gate: does it link colour-and-shape words and arrow directions to pictures?

Both the training script and the test suite call `measure`, each with its own way of
embedding (the suite goes through clipsearch's real encoder).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scenes import COLOURS, DIRECTIONS, SHAPES, arrow_captions, random_scene, render, shape_captions

EmbedImages = Callable[[Sequence[Image.Image]], np.ndarray]
EmbedTexts = Callable[[Sequence[str]], np.ndarray]

# Never used by training (which draws from seeds below 1000).
GATE_SEED = 20261123


@dataclass(frozen=True)
class QualityReport:
    shape_top1: float  # share of colour-and-shape captions whose top image has that colour and shape
    arrow_accuracy: float  # share of arrow images whose direction caption ranks first
    shape_failures: tuple[str, ...]
    arrow_failures: tuple[str, ...]

    def summary(self) -> str:
        return (
            f"colour+shape top-1 {self.shape_top1:.1%} ({len(self.shape_failures)} misses: "
            f"{', '.join(self.shape_failures[:8]) or 'none'}); arrow direction {self.arrow_accuracy:.1%} "
            f"({len(self.arrow_failures)} misses: {', '.join(self.arrow_failures[:8]) or 'none'})"
        )


def measure(embed_images: EmbedImages, embed_texts: EmbedTexts, seed: int = GATE_SEED,
            size: tuple[int, int] = (320, 240)) -> QualityReport:
    rng = random.Random(seed)
    scenes = [random_scene(rng, kind=s, colour=c) for c in COLOURS for s in SHAPES for _ in range(2)]
    arrows = [random_scene(rng, kind="arrow", colour=c, direction=d)
              for c in COLOURS for d in DIRECTIONS for _ in range(2)]
    everything = scenes + arrows
    image_vectors = embed_images([render(s, *size) for s in everything])

    shape_failures = []
    captions = shape_captions()
    text_vectors = embed_texts([c for c, _, _ in captions])
    best = np.argmax(text_vectors @ image_vectors.T, axis=1)
    for (text, colour, shape), index in zip(captions, best):
        top = everything[index].main
        if (top.colour, top.kind) != (colour, shape):
            shape_failures.append(f"{text!r}->{top.colour} {top.kind}")

    direction_texts = arrow_captions()
    direction_vectors = embed_texts([c for c, _ in direction_texts])
    arrow_vectors = image_vectors[len(scenes):]
    predicted = np.argmax(arrow_vectors @ direction_vectors.T, axis=1)
    arrow_failures = [
        f"{scene.main.direction}->{direction_texts[p][1]}"
        for scene, p in zip(arrows, predicted) if direction_texts[p][1] != scene.main.direction
    ]
    return QualityReport(
        shape_top1=1 - len(shape_failures) / len(captions),
        arrow_accuracy=1 - len(arrow_failures) / len(arrows),
        shape_failures=tuple(shape_failures),
        arrow_failures=tuple(arrow_failures),
    )
