"""Procedural scenes with captions: coloured shapes and arrows on varied backgrounds.

One generator serves three users: the training script of the test model, the model's
quality gate, and the fixture that writes photo folders for the end-to-end tests. All
geometry is relative to the centred square of the canvas, so a scene looks the same
at 96 px and at 4000x3000 and survives CLIP's centre crop.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 140, 10),
    "yellow": (245, 225, 20),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "purple": (140, 40, 190),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "cross")
DIRECTIONS = ("up", "down", "left", "right")
BACKGROUND_KINDS = ("plain", "gradient", "noise", "texture")
# Plain backgrounds are named in captions; the others get unnamed muted tones.
PLAIN_BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (20, 20, 20),
    "beige": (225, 210, 175),
}
MIN_CONTRAST = 140.0


@dataclass(frozen=True)
class SceneObject:
    kind: str  # a shape name, or "arrow"
    colour: str
    size: str  # "small" or "large"
    cx: float  # centre, as a fraction of the centred square
    cy: float
    radius: float  # half extent, as a fraction of the centred square
    direction: str | None = None  # arrows only
    rotation: float = 0.0  # degrees, shapes only


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    background: str  # one of BACKGROUND_KINDS
    background_name: str | None  # plain backgrounds only
    background_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    texture: str = "stripes"
    seed: int = 0
    caption: str = field(default="", compare=False)

    @property
    def main(self) -> SceneObject:
        return self.objects[0]


def _distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return math.dist(a, b)


def _pick_background(rng: random.Random, colours: list[str]) -> tuple[str, str | None, tuple]:
    object_rgbs = [COLOURS[c] for c in colours]
    kind = rng.choice(BACKGROUND_KINDS)
    if kind == "plain":
        names = [
            n for n, rgb in PLAIN_BACKGROUNDS.items()
            if all(_distance(rgb, o) > MIN_CONTRAST for o in object_rgbs)
        ]
        if names:
            name = rng.choice(names)
            rgb = PLAIN_BACKGROUNDS[name]
            return kind, name, (rgb, rgb)
        kind = "gradient"
    while True:
        base = tuple(rng.randint(40, 215) for _ in range(3))
        # Muted tones keep colour words meaning the object, not the backdrop.
        grey = sum(base) / 3
        base = tuple(int(grey + (c - grey) * 0.35) for c in base)
        other = tuple(max(0, min(255, c + rng.randint(-45, 45))) for c in base)
        if all(_distance(base, o) > MIN_CONTRAST and _distance(other, o) > MIN_CONTRAST for o in object_rgbs):
            return kind, None, (base, other)


def random_scene(
    rng: random.Random,
    kind: str | None = None,
    colour: str | None = None,
    direction: str | None = None,
    size: str | None = None,
    pair: bool = False,
) -> Scene:
    """A scene whose first object is `kind`/`colour` (random where not given)."""
    kind = kind or rng.choice((*SHAPES, "arrow"))
    colour = colour or rng.choice(list(COLOURS))
    specs = [(kind, colour)]
    if pair:
        while True:
            second = (rng.choice(SHAPES), rng.choice(list(COLOURS)))
            if second != specs[0]:
                break
        specs.append(second)
    objects = []
    for index, (obj_kind, obj_colour) in enumerate(specs):
        obj_size = size if (size and index == 0) else rng.choice(("small", "large"))
        if pair:
            obj_size = "small"
        radius = rng.uniform(0.11, 0.16) if obj_size == "small" else rng.uniform(0.22, 0.32)
        if pair:
            # Left and right halves, so two objects never overlap.
            cx = rng.uniform(0.22, 0.3) if index == 0 else rng.uniform(0.7, 0.78)
            cy = rng.uniform(0.3, 0.7)
        else:
            margin = radius + 0.04
            cx, cy = rng.uniform(margin, 1 - margin), rng.uniform(margin, 1 - margin)
        obj_direction = None
        rotation = 0.0
        if obj_kind == "arrow":
            obj_direction = direction or rng.choice(DIRECTIONS)
        else:
            rotation = rng.uniform(-12, 12)
        objects.append(SceneObject(obj_kind, obj_colour, obj_size, cx, cy, radius, obj_direction, rotation))
    background, background_name, background_colours = _pick_background(rng, [c for _, c in specs])
    scene = Scene(
        objects=tuple(objects),
        background=background,
        background_name=background_name,
        background_colours=background_colours,
        texture=rng.choice(("stripes", "checks")),
        seed=rng.getrandbits(32),
    )
    return Scene(**{**scene.__dict__, "caption": caption(scene, rng)})


def _object_phrase(obj: SceneObject, rng: random.Random, with_size: bool) -> str:
    size = f"{obj.size} " if with_size else ""
    if obj.kind == "arrow":
        colour = f"{obj.colour} " if rng.random() < 0.7 else ""
        return _with_article(f"{size}{colour}arrow pointing {obj.direction}")
    return _with_article(f"{size}{obj.colour} {obj.kind}")


def _with_article(phrase: str) -> str:
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def background_phrase(scene: Scene) -> str:
    if scene.background == "plain":
        return f"a {scene.background_name} background"
    if scene.background == "texture":
        return "a striped background" if scene.texture == "stripes" else "a checkered background"
    return {"gradient": "a gradient background", "noise": "a noisy background"}[scene.background]


def caption(scene: Scene, rng: random.Random) -> str:
    with_size = len(scene.objects) == 1 and rng.random() < 0.3
    phrase = " and ".join(_object_phrase(o, rng, with_size) for o in scene.objects)
    text = phrase
    if rng.random() < 0.35:
        text = f"{text} on {background_phrase(scene)}"
    if rng.random() < 0.35:
        text = f"a photo of {text}"
    return text


def _unit_polygon(kind: str) -> list[tuple[float, float]]:
    if kind == "square":
        return [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]
    if kind == "triangle":
        return [(0.0, -1.0), (0.95, 0.75), (-0.95, 0.75)]
    if kind == "hexagon":
        return [(math.cos(math.radians(60 * i)), math.sin(math.radians(60 * i))) for i in range(6)]
    if kind == "star":
        points = []
        for i in range(10):
            r = 1.0 if i % 2 == 0 else 0.42
            angle = math.radians(-90 + 36 * i)
            points.append((r * math.cos(angle), r * math.sin(angle)))
        return points
    if kind == "cross":
        a, b = 0.3, 0.95
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a),
                (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
    if kind == "arrow":  # pointing right; rotated for other directions
        return [(-0.95, -0.22), (0.1, -0.22), (0.1, -0.6), (0.95, 0.0), (0.1, 0.6), (0.1, 0.22), (-0.95, 0.22)]
    raise ValueError(kind)


_ARROW_ANGLES = {"right": 0.0, "down": 90.0, "left": 180.0, "up": 270.0}


def _background(scene: Scene, width: int, height: int, side: int, rng: np.random.Generator) -> np.ndarray:
    a = np.array(scene.background_colours[0], dtype=np.float32)
    b = np.array(scene.background_colours[1], dtype=np.float32)
    if scene.background == "plain":
        return np.broadcast_to(a, (height, width, 3)).copy()
    ys = (np.arange(height, dtype=np.float32)[:, None] - (height - side) / 2) / side
    xs = (np.arange(width, dtype=np.float32)[None, :] - (width - side) / 2) / side
    if scene.background == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = np.clip(0.5 + (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle), 0, 1)
        return a + (b - a) * t[..., None]
    if scene.background == "noise":
        # Noise lives on a grid relative to the scene, so downscaling keeps it visible.
        grid = rng.normal(0, 28, size=(24, 24, 3)).astype(np.float32)
        field = np.asarray(Image.fromarray(np.clip(grid + 128, 0, 255).astype(np.uint8)).resize(
            (side, side), Image.Resampling.BILINEAR), dtype=np.float32) - 128
        pad_y, pad_x = (height - side) // 2, (width - side) // 2
        field = np.pad(field, ((pad_y, height - side - pad_y), (pad_x, width - side - pad_x), (0, 0)), mode="reflect")
        return a + field
    period = 1 / rng.choice((6, 8, 10))
    if scene.texture == "stripes":
        mask = (np.floor((xs + ys) / period) % 2).astype(bool)
    else:
        mask = ((np.floor(xs / period) + np.floor(ys / period)) % 2).astype(bool)
    return np.where(mask[..., None], a, b)


def render(scene: Scene, width: int, height: int) -> Image.Image:
    """Draw the scene on a width x height RGB canvas."""
    rng = np.random.default_rng(scene.seed)
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    pixels = np.clip(_background(scene, width, height, side, rng), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        angle = math.radians(_ARROW_ANGLES[obj.direction] if obj.kind == "arrow" else obj.rotation)
        cos, sin = math.cos(angle), math.sin(angle)
        cx, cy, r = left + obj.cx * side, top + obj.cy * side, obj.radius * side
        fill = COLOURS[obj.colour]
        if obj.kind == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
            continue
        points = [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in _unit_polygon(obj.kind)]
        draw.polygon(points, fill=fill)
    return image


def shape_captions() -> list[tuple[str, str, str]]:
    """(caption, colour, shape) for every colour-and-shape pair."""
    return [(_with_article(f"{c} {s}"), c, s) for c in COLOURS for s in SHAPES]


def arrow_captions() -> list[tuple[str, str]]:
    return [(f"an arrow pointing {d}", d) for d in DIRECTIONS]


# Every single-object class of the training data: shapes in every colour, and arrows in every colour and direction.
TRAINING_CLASSES = ([(s, c, None) for s in SHAPES for c in COLOURS]
                    + [("arrow", c, d) for c in COLOURS for d in DIRECTIONS])


def training_scene(rng: random.Random, index: int, pair: bool) -> tuple[Scene, int, int]:
    """Item `index` of a training chunk and its canvas: a two-object scene, or one of class index % classes.

    Varied canvas sizes and aspect ratios exercise the real resize-and-crop path."""
    if pair:
        scene = random_scene(rng, pair=True)
    else:
        kind, colour, direction = TRAINING_CLASSES[index % len(TRAINING_CLASSES)]
        scene = random_scene(rng, kind=kind, colour=colour, direction=direction)
    width = rng.randint(72, 200)
    return scene, width, int(width * rng.choice((1.0, 0.75, 0.5625, 1.333)))
