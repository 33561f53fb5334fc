"""Chinese captions for the procedural scenes of scenes.py, with natural variations.

scenes.py writes each scene's English caption; this module writes a Chinese one for the same
scene, so the bilingual test model learns that "a red circle" and "一个红色的圆形" mean one picture.
The first word of every tuple below is the canonical one, which the quality gate's captions use;
the others are common synonyms that training also shows, since users type them too.
"""

from __future__ import annotations

import random

from scenes import COLOURS, DIRECTIONS, SHAPES, Scene, SceneObject, arrow_captions, shape_captions

COLOURS_ZH: dict[str, str] = {
    "red": "红色",
    "orange": "橙色",
    "yellow": "黄色",
    "green": "绿色",
    "blue": "蓝色",
    "purple": "紫色",
    "white": "白色",
    "black": "黑色",
}
SHAPES_ZH: dict[str, tuple[str, ...]] = {
    "circle": ("圆形", "圆"),
    "square": ("正方形", "方块"),
    "triangle": ("三角形",),
    "star": ("星星", "五角星"),
    "hexagon": ("六边形",),
    "cross": ("十字", "十字形"),
}
# "指向左边的箭头" (canonical), "指向左侧的箭头"; the one-character forms go in 向左 / 朝左.
DIRECTIONS_ZH: dict[str, tuple[tuple[str, ...], str]] = {
    "up": (("上面", "上方"), "上"),
    "down": (("下面", "下方"), "下"),
    "left": (("左边", "左侧"), "左"),
    "right": (("右边", "右侧"), "右"),
}
SIZES_ZH = {"small": "小", "large": "大"}
PLAIN_BACKGROUNDS_ZH = {"white": "白色", "gray": "灰色", "black": "黑色", "beige": "米色"}
OTHER_BACKGROUNDS_ZH: dict[str, tuple[str, ...]] = {
    "gradient": ("渐变",),
    "noise": ("噪点", "杂色"),
    "stripes": ("条纹",),
    "checks": ("格子", "棋盘格"),
}
# Every colour, shape and direction of scenes.py has a Chinese name: a new one there must be named here.
assert set(COLOURS_ZH) == set(COLOURS) and set(SHAPES_ZH) == set(SHAPES) and set(DIRECTIONS_ZH) == set(DIRECTIONS)


def _direction_modifier(direction: str, rng: random.Random) -> str:
    """The words before 的箭头: 指向左边 / 向左 / 朝左."""
    long_forms, short = DIRECTIONS_ZH[direction]
    roll = rng.random()
    if roll < 0.6:
        return f"指向{rng.choice(long_forms)}"
    return f"{'向' if roll < 0.85 else '朝'}{short}"


def _core(obj: SceneObject, rng: random.Random, with_size: bool) -> str:
    """An object without a measure word: 红色的圆形, 红色小圆形, 指向左边的红色箭头."""
    size = SIZES_ZH[obj.size] if with_size else ""
    if obj.kind == "arrow":
        colour = COLOURS_ZH[obj.colour] if rng.random() < 0.7 else ""
        return f"{_direction_modifier(obj.direction or 'up', rng)}的{colour}{size}箭头"
    linker = "的" if rng.random() < 0.6 else ""
    return f"{COLOURS_ZH[obj.colour]}{linker}{size}{rng.choice(SHAPES_ZH[obj.kind])}"


def _subject(scene: Scene, rng: random.Random, measure: bool) -> str:
    """The objects, joined: 一个绿色的三角形和一个黄色的星星, or without 一个: 绿色三角形和黄色星星."""
    with_size = len(scene.objects) == 1 and rng.random() < 0.3
    joiner = rng.choice(("和", "和", "与", "，还有"))
    return joiner.join(("一个" if measure else "") + _core(o, rng, with_size) for o in scene.objects)


def background_phrase_zh(scene: Scene, rng: random.Random) -> str:
    if scene.background == "plain":
        return f"{PLAIN_BACKGROUNDS_ZH[scene.background_name or 'white']}背景"
    key = scene.texture if scene.background == "texture" else scene.background
    return f"{rng.choice(OTHER_BACKGROUNDS_ZH[key])}背景"


def caption_zh(scene: Scene, rng: random.Random) -> str:
    """A Chinese caption of the scene, varied the way scenes.caption varies the English one."""
    with_background, as_photo = rng.random() < 0.35, rng.random() < 0.35
    background = background_phrase_zh(scene, rng)
    if as_photo and not with_background:
        # 一张…的照片 takes the bare noun phrase: 一张红色圆形的照片, not 一张一个红色圆形的照片.
        return rng.choice((f"一张{_subject(scene, rng, False)}的照片", f"照片里有{_subject(scene, rng, True)}"))
    subject = _subject(scene, rng, rng.random() < 0.6)
    if as_photo:
        return rng.choice((f"一张照片：{background}上的{subject}", f"照片里{background}上有{subject}"))
    if with_background:
        return rng.choice((f"{background}上的{subject}", f"{subject}，{background}", f"在{background}上有{subject}"))
    return subject


def gate_captions_zh() -> dict[str, str]:
    """The quality gate's English captions (quality.measure's queries) to their canonical Chinese."""
    shapes = {text: f"一个{COLOURS_ZH[c]}的{SHAPES_ZH[s][0]}" for text, c, s in shape_captions()}
    arrows = {text: f"一个指向{DIRECTIONS_ZH[d][0][0]}的箭头" for text, d in arrow_captions()}
    return shapes | arrows


def gate_captions_mixed() -> dict[str, str]:
    """The same queries typed in both languages at once: "red 圆形", "指向上面的 arrow"."""
    shapes = {text: f"{c} {SHAPES_ZH[s][0]}" for text, c, s in shape_captions()}
    arrows = {text: f"指向{DIRECTIONS_ZH[d][0][0]}的 arrow" for text, d in arrow_captions()}
    return shapes | arrows
