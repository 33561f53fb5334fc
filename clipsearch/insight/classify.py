"""`clipsearch classify`: for each image, labels ranked by their zero-shot probability.

An indexed image is classified from its stored vector, a folder by the stored vectors of every indexed
image under it (nothing is decoded), any other image file is decoded and embedded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from clipsearch.errors import UsageError
from clipsearch.models.zero_shot import DEFAULT_TEMPLATES, label_vectors, probabilities, template_problem
from clipsearch.search.searcher import Searcher
from clipsearch.text import visible


@dataclass(frozen=True)
class Classification:
    path: str
    label: str
    probability: float
    rank: int  # 1: the most probable label of this image


def parse_labels(text: str | None, lines: Sequence[str] | None) -> list[str]:
    """Labels from --labels "a,b,c" or the lines of --labels-file: stripped, without repeats or blanks."""
    raw = [part for part in (text or "").split(",")] + list(lines or [])
    labels = list(dict.fromkeys(label.strip() for label in raw if label.strip() and not label.startswith("#")))
    if not labels:
        raise UsageError("no labels: give --labels \"cat,dog\" or --labels-file FILE (one label per line)")
    return labels


def _check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    for template in templates:
        if problem := template_problem(template):
            raise UsageError(f"--template {template!r}: {problem}")
    return tuple(templates)


def _targets(searcher: Searcher, images: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
    for image in images:
        resolved = os.path.realpath(image) if image else image
        if image and os.path.isdir(resolved):
            found = False
            for ids, vectors in searcher.catalog.files.vectors_under(resolved):
                records = searcher.catalog.files.records(ids.tolist())
                for file_id, vector in zip(ids.tolist(), vectors):
                    found = True
                    yield records[file_id].path, vector
            if not found:
                raise UsageError(f"{visible(image)}: nothing under this folder is indexed")
        else:
            yield image, searcher.image_vector(image, include_self=True)[0]


def classify(searcher: Searcher, images: Sequence[str], labels: Sequence[str], templates: Sequence[str] = (),
             top: int = 5) -> list[Classification]:
    """Each image's `top` labels by probability, the probabilities a softmax over all the labels."""
    if top < 1:
        raise UsageError("--top must be at least 1")
    if not labels:
        raise UsageError("no labels: give the labels the images compete for")
    chosen = _check_templates(templates) if templates else DEFAULT_TEMPLATES
    targets = list(_targets(searcher, images))
    if not targets:
        raise UsageError("no images to classify")
    vectors = label_vectors(searcher.embedder.texts, labels, [chosen] * len(labels))
    probs = probabilities(np.stack([v for _, v in targets]), vectors, searcher.embedder.logit_scale)
    results = []
    for (path, _), row in zip(targets, probs):
        order = np.argsort(-row, kind="stable")[:top]
        results += [Classification(path, labels[i], float(row[i]), rank) for rank, i in enumerate(order, start=1)]
    return results

