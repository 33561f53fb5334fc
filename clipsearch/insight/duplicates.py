"""`clipsearch duplicates`: groups of photos that are the same file, the same picture, or the same moment.

exact    the same bytes (the same content hash);
near     the same picture in another version: resized, recompressed, lightly cropped, turned, re-exported;
similar  different shots of one moment: bursts and retakes. Shown only when asked, since a burst is not a
         duplicate to delete.

Pairs come from the HNSW index, each photo's nearest neighbours, never all pairs. A cosine threshold does
not carry over from one model to another, so each database measures its own, once per model: it takes a
few of its photos, makes from each the versions a near duplicate would be (half size, JPEG quality 60, 5%
cropped off) and the shots a burst would be (the frame shifted), embeds them, and sets each threshold just
under the lowest cosine it saw. Capture times then tell bursts from copies: versions of one picture keep
its capture time (or have none), shots of one moment do not share it.
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np

from clipsearch.errors import CatalogError, ImageError, UsageError
from clipsearch.imaging.decode import decode_image, read_file
from clipsearch.models.identity import ModelIdentity
from clipsearch.search.candidates import candidates_for
from clipsearch.search.request import QueryOptions
from clipsearch.search.searcher import Searcher

THRESHOLDS_SETTING = "duplicate_thresholds"
CALIBRATION_PHOTOS = 24
NEIGHBOURS = 12
# Duplicates are a photo's very nearest neighbours, which HNSW finds at a small search breadth: half the default's
# time over a whole library (bench/library_insight.py).
NEIGHBOUR_EF = 24
CHUNK = 8192
_MARGIN = 0.01


@dataclass(frozen=True)
class Thresholds:
    near: float  # at least this cosine: another version of the same picture, if capture times agree
    similar: float  # at least this: the same moment


@dataclass(frozen=True)
class DuplicateGroup:
    number: int
    kind: str  # "exact", "near" or "similar"
    paths: list[str]  # the one to keep first: most pixels, then largest file
    scores: list[float]  # each photo's cosine to the first


@dataclass(frozen=True)
class _Photo:
    id: int
    path: str
    size: int
    pixels: int
    taken_at: str | None
    camera: str | None
    hash: str


BURST_WINDOW_S = 300  # shots of one moment are minutes apart at most; look-alikes from other days are not it


def _one_moment(first: _Photo, second: _Photo) -> bool:
    """Whether two photos can be shots of one moment: taken within minutes, with the same camera, where known."""
    if first.camera and second.camera and first.camera != second.camera:
        return False
    if not (first.taken_at and second.taken_at):
        return True
    try:
        gap = abs((datetime.fromisoformat(first.taken_at) - datetime.fromisoformat(second.taken_at)).total_seconds())
    except ValueError:
        return True
    return gap <= BURST_WINDOW_S


def _variants(picture) -> tuple[list, list]:
    """What a near duplicate of `picture` would be, and what a burst shot of it would be."""
    from PIL import Image

    width, height = picture.size
    half = picture.resize((max(8, width // 2), max(8, height // 2)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=60)
    recompressed = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    dx, dy = width // 20, height // 20
    cropped = picture.crop((dx, dy, width - dx, height - dy))
    shift = width // 8
    shifted = [picture.crop((shift, 0, width, height)), picture.crop((0, 0, width - shift, height))]
    return [half, recompressed, cropped], shifted


def calibrate(searcher: Searcher, paths: Sequence[str]) -> Thresholds:
    """Thresholds for this database's model, measured on some of its own photos."""
    originals, nears, bursts = [], [], []
    for path in paths:
        try:
            picture = decode_image(read_file(path), target_size=512).image
        except ImageError:
            continue
        near, burst = _variants(picture)
        originals.append(picture)
        nears.append(near)
        bursts.append(burst)
    if not originals:
        return Thresholds(0.95, 0.85)
    embed = searcher.embedder.pictures
    base = embed(originals)
    near_cos = [float(base[i] @ v) for i, group in enumerate(nears) for v in embed(group)]
    burst_cos = [float(base[i] @ v) for i, group in enumerate(bursts) for v in embed(group)]
    near = float(np.clip(min(near_cos) - _MARGIN, 0.5, 0.995))
    similar = float(np.clip(min(burst_cos) - _MARGIN, 0.4, near))
    return Thresholds(near, similar)


def _thresholds(searcher: Searcher, photos: list[_Photo]) -> Thresholds:
    stored = searcher.catalog.settings.get_json(THRESHOLDS_SETTING)
    model = searcher.identity.to_dict()
    if stored and ModelIdentity.from_dict(stored.get("model") or {}).same_model(searcher.identity):
        return Thresholds(stored["near"], stored["similar"])
    step = max(1, len(photos) // CALIBRATION_PHOTOS)
    measured = calibrate(searcher, [p.path for p in photos[::step][:CALIBRATION_PHOTOS]])
    with contextlib.suppress(CatalogError):  # a read-only database still answers; it measures again next time
        searcher.catalog.settings.set_json(THRESHOLDS_SETTING, {**asdict(measured), "model": model})
    return measured


class _Groups:
    """Union-find over photo indexes."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)

    def members(self) -> list[list[int]]:
        found: dict[int, list[int]] = defaultdict(list)
        for item in range(len(self.parent)):
            found[self.find(item)].append(item)
        return [group for group in found.values() if len(group) > 1]


def _pairs(searcher: Searcher, ids: np.ndarray, floor: float) -> list[tuple[int, int, float]]:
    """(id, id, cosine) of every pair of neighbours at or above `floor`, each pair once."""
    index = searcher.index
    position = {int(i): n for n, i in enumerate(ids.tolist())}
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, len(ids), CHUNK):
        chunks = list(searcher.catalog.files.vectors(ids[start:start + CHUNK].tolist()))
        order = [i for chunk_ids, _ in chunks for i in chunk_ids.tolist()]
        labels, cosines = index.neighbours(np.concatenate([v for _, v in chunks]), NEIGHBOURS, ef=NEIGHBOUR_EF)
        for own, row_labels, row_cosines in zip(order, labels, cosines):
            for other, cosine in zip(row_labels.tolist(), row_cosines.tolist()):
                if other != own and other in position and cosine >= floor:
                    pairs[(min(own, other), max(own, other))] = cosine
    return [(a, b, c) for (a, b), c in pairs.items()]


def find_duplicates(searcher: Searcher, within: Sequence[str] = (), include_similar: bool = False,
                    threshold: float | None = None) -> tuple[list[DuplicateGroup], Thresholds]:
    """The groups, largest first, and the thresholds that made them (--threshold sets the near one)."""
    folders = list(candidates_for(searcher.catalog, QueryOptions(within=tuple(within))).folders)
    photos = [_Photo(row[0], row[1], row[2], (row[3] or 0) * (row[4] or 0), row[5],
                     " ".join(filter(None, row[6:8])) or None, row[8])
              for row in searcher.catalog.files.duplicate_facts(folders)]
    measured = _thresholds(searcher, photos)
    if threshold is not None:
        if not 0 < threshold <= 1:
            raise UsageError(f"--threshold {threshold}: a cosine between 0 and 1")
        measured = Thresholds(threshold, min(measured.similar, threshold))
    by_id = {p.id: n for n, p in enumerate(photos)}
    pairs = _pairs(searcher, np.array([p.id for p in photos], np.int64), measured.similar) if photos else []
    groups = _group(photos, by_id, pairs, measured, include_similar)
    grouped = [photos[m].id for _, members in groups for m in members]
    vectors = {i: v for ids, vs in searcher.catalog.files.vectors(grouped) for i, v in zip(ids.tolist(), vs)}
    return [_described(number, kind, members, photos, vectors) for number, (kind, members)
            in enumerate(groups, start=1)], measured


def _group(photos: list[_Photo], by_id: dict[int, int], pairs: list[tuple[int, int, float]],
           thresholds: Thresholds, include_similar: bool) -> list[tuple[str, list[int]]]:
    same = _Groups(len(photos))  # exact and near: the same picture
    moment = _Groups(len(photos))  # and similar: the same moment
    by_hash: dict[str, list[int]] = defaultdict(list)
    for n, photo in enumerate(photos):
        by_hash[photo.hash].append(n)
    for members in by_hash.values():
        for other in members[1:]:
            same.join(members[0], other)
            moment.join(members[0], other)
    for a, b, cosine in pairs:
        first, second = photos[by_id[a]], photos[by_id[b]]
        times_agree = first.taken_at is None or second.taken_at is None or first.taken_at == second.taken_at
        if cosine >= thresholds.near and times_agree:
            same.join(by_id[a], by_id[b])
            moment.join(by_id[a], by_id[b])
        elif _one_moment(first, second):
            moment.join(by_id[a], by_id[b])
    groups = [("exact" if len({photos[m].hash for m in g}) == 1 else "near", g) for g in same.members()]
    if include_similar:
        grouped = {m for _, g in groups for m in g}
        groups += [("similar", g) for g in moment.members() if not set(g) <= grouped
                   and len({same.find(m) for m in g}) > 1]
    return sorted(groups, key=lambda item: (-len(item[1]), min(photos[m].path for m in item[1])))


def _described(number: int, kind: str, members: list[int], photos: list[_Photo],
               vectors: dict[int, np.ndarray]) -> DuplicateGroup:
    ordered = sorted(members, key=lambda m: (-photos[m].pixels, -photos[m].size, photos[m].path))
    keeper = vectors[photos[ordered[0]].id]
    return DuplicateGroup(number, kind, [photos[m].path for m in ordered],
                          [round(float(vectors[photos[m].id] @ keeper), 4) for m in ordered])
