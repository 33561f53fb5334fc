"""Tagging vocabularies: the built-in one, and the file format for your own.

How the built-in one was chosen: concepts a person searches a personal photo library for (the places,
things, animals, food and occasions of everyday photos, the documents and screenshots that pile up
beside them, the weather and the time of day), each phrased as CLIP's training captions phrase them,
in groups whose templates suit them ("a photo taken at a {}" for a place, "a plate of {}" for food).
Within a group the labels compete (a softmax over the group); groups do not compete with each other.
Labels that CLIP models confuse by design were merged or left out (for example "sea" and "ocean").

A vocabulary file is text: `[group]` starts a group, `templates = A {} | B {}` sets its templates (else
the default ensemble), every other non-empty line not starting with `#` is a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipsearch.errors import UsageError
from clipsearch.models.zero_shot import DEFAULT_TEMPLATES, template_problem


@dataclass(frozen=True)
class Group:
    name: str
    templates: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    groups: tuple[Group, ...]

    @property
    def labels(self) -> list[str]:
        return [label for group in self.groups for label in group.labels]

    @property
    def label_groups(self) -> list[int]:
        return [number for number, group in enumerate(self.groups) for _ in group.labels]

    @property
    def label_templates(self) -> list[tuple[str, ...]]:
        return [group.templates for group in self.groups for _ in group.labels]

    def to_dict(self) -> dict:
        return {"groups": [{"name": g.name, "templates": list(g.templates), "labels": list(g.labels)}
                           for g in self.groups]}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        return cls(tuple(Group(g["name"], tuple(g["templates"]), tuple(g["labels"])) for g in data["groups"]))


def _group(name: str, templates: tuple[str, ...], labels: str) -> Group:
    return Group(name, templates, tuple(label.strip() for label in labels.split(",") if label.strip()))


BUILT_IN = Vocabulary((
    _group("scene", ("a photo taken at a {}.", "a photo of a {}.", "a wide photo of a {}."),
           "beach, mountain, forest, lake, river, waterfall, desert, field, meadow, garden, park, playground, "
           "city street, city skyline, village, countryside, farm, vineyard, harbour, bridge, road, highway, "
           "railway station, airport, train, bus, underground station, church, temple, castle, museum, "
           "art gallery, library, shop, supermarket, market, restaurant, cafe, bar, kitchen, living room, "
           "bedroom, bathroom, office, classroom, hospital, gym, swimming pool, stadium, concert hall, theatre, "
           "campsite, ski slope, island, cave, canyon, snowy landscape, coast, harbour at night"),
    _group("object", ("a photo of a {}.", "a close-up photo of a {}.", "a photo with a {} in it."),
           "car, bicycle, motorbike, boat, aeroplane, truck, tractor, bus stop, traffic light, street sign, "
           "bench, chair, sofa, table, bed, lamp, television, computer, laptop, phone, camera, keyboard, book, "
           "newspaper, clock, watch, glasses, umbrella, backpack, handbag, suitcase, shoe, hat, jacket, dress, "
           "toy, teddy bear, doll, ball, kite, guitar, piano, violin, drum, painting, sculpture, vase, flower "
           "bouquet, potted plant, tree, candle, christmas tree, balloon, gift, flag, tent, tools, ladder, "
           "bottle, cup, wine glass, plate, bowl, knife, fork, pram, wheelchair, skateboard, surfboard, skis, "
           "tennis racket, football"),
    _group("animal", ("a photo of a {}.", "a close-up photo of a {}.", "a photo of a {} outdoors."),
           "dog, puppy, cat, kitten, horse, cow, sheep, goat, pig, chicken, duck, goose, swan, pigeon, seagull, "
           "parrot, owl, eagle, rabbit, hamster, guinea pig, mouse, squirrel, hedgehog, fox, deer, bear, wolf, "
           "lion, tiger, elephant, giraffe, zebra, monkey, kangaroo, fish, turtle, frog, snake, lizard, "
           "butterfly, bee, spider, dolphin, whale, seal, penguin, camel"),
    _group("food", ("a photo of {}, a type of food.", "a close-up photo of {}.", "a plate of {}."),
           "pizza, pasta, burger, sandwich, salad, soup, sushi, noodles, rice, curry, steak, roast chicken, "
           "grilled fish, seafood, eggs, bread, cheese, cake, birthday cake, cupcakes, cookies, chocolate, ice cream, "
           "pancakes, waffles, croissant, fruit, strawberries, apples, bananas, vegetables, barbecue, "
           "breakfast, dessert, coffee, tea, wine, beer, cocktail, juice"),
    _group("occasion", ("a photo from a {}.", "a photo of people at a {}.", "a photo of a {}."),
           "birthday party, wedding, christmas, new year's eve, halloween, easter, graduation, concert, "
           "festival, parade, picnic, barbecue party, family dinner, holiday trip, road trip, hike, "
           "camping trip, sports match, race, school play, baby shower, funeral, protest, conference, "
           "fireworks display"),
    _group("people", ("a photo of {}.", "a picture of {}."),
           "a baby, a child, children playing, a teenager, a couple, a family, a group of friends, a crowd, "
           "an old man, an old woman, a selfie, a portrait, a man, a woman, people dancing, people eating, "
           "people swimming, people running, people skiing, people cycling, a person reading, "
           "a person sleeping, a bride and groom, a team photo, nobody"),
    _group("document", ("a {}.", "a photo of a {}.", "a scan of a {}."),
           "screenshot, receipt, invoice, letter, handwritten note, whiteboard, blackboard, menu, map, "
           "ticket, boarding pass, passport, identity card, business card, bank card, form, page of text, "
           "book page, diagram, chart, spreadsheet, presentation slide, poster, sign, label, barcode, "
           "QR code, meme, drawing, cartoon"),
    _group("weather", ("a photo taken on a {} day.", "a photo of {} weather."),
           "sunny, cloudy, rainy, snowy, foggy, stormy, windy, icy"),
    _group("time of day", ("a photo taken at {}.", "a landscape at {}."),
           "sunrise, morning, midday, afternoon, sunset, dusk, night, blue hour"),
    _group("light and style", ("a {} photo.", "a photo that is {}."),
           "black and white, colourful, dark, bright, blurry, sharp, close-up, aerial, underwater, panoramic, "
           "long-exposure, backlit"),
))


def read_vocabulary(path: Path) -> Vocabulary:
    """A vocabulary file (see the module's notes); an empty one is an error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--vocabulary {path}: cannot read it ({error})") from error
    groups: list[Group] = []
    name, templates, labels = "labels", DEFAULT_TEMPLATES, []

    def close() -> None:
        if labels:
            groups.append(Group(name, templates, tuple(dict.fromkeys(labels))))

    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            close()
            name, templates, labels = line[1:-1].strip() or "labels", DEFAULT_TEMPLATES, []
        elif line.startswith("templates") and "=" in line:
            templates = tuple(t.strip() for t in line.split("=", 1)[1].split("|") if "{}" in t)
            if not templates:
                raise UsageError(f"--vocabulary {path}: templates need a {{}} where the label goes")
            if problem := next(filter(None, map(template_problem, templates)), None):
                raise UsageError(f"--vocabulary {path}: templates = {line.split('=', 1)[1].strip()}: {problem}")
        else:
            labels.append(line)
    close()
    if not groups:
        raise UsageError(f"--vocabulary {path}: it holds no labels (one label per line)")
    return Vocabulary(tuple(groups))
