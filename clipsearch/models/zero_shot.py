"""Zero-shot labels: CLIP's own classifier, built from texts, applied to stored image vectors.

A label's vector is the mean of the normalised embeddings of the label put into each of several prompt
templates ("a photo of a {}."), normalised again: the prompt ensemble of CLIP's ImageNet notebook. An
image's probability for each label is the softmax, over the labels it competes with, of the model's
`logit_scale` times the cosine. All of it is matrix work on vectors already in the catalogue.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# A small ensemble for photos, in the spirit of CLIP's notebook (which averaged 80 ImageNet templates, then
# found 7 enough): docs/commands.md, "Labels and tags", says how it was chosen and what it gains on the test model.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a cropped photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a blurry photo of a {}.",
)
SINGLE_TEMPLATE: tuple[str, ...] = ("a photo of a {}.",)

EmbedTexts = Callable[[list[str]], np.ndarray]


def _normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def template_problem(template: str) -> str | None:
    """Why `template` cannot take a label (it is filled with str.format), or None: exactly one {}, other braces
    doubled."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as error:  # a lone { or }
        return f"{str(error)[:1].lower()}{str(error)[1:]} (write {{{{ and }}}} for braces)"
    if fields != [("", "", None)]:
        return "it needs exactly one {} where the label goes (write {{ and }} for other braces)"
    return None


def label_vectors(embed_texts: EmbedTexts, labels: Sequence[str], templates: Sequence[Sequence[str]],
                  batch: int = 256) -> np.ndarray:
    """One vector per label: its templates filled in, embedded, averaged, normalised. templates[i] are label i's."""
    prompts = [template.format(label) for label, own in zip(labels, templates) for template in own]
    embedded = np.concatenate([embed_texts(prompts[start:start + batch]) for start in range(0, len(prompts), batch)])
    vectors, start = [], 0
    for own in templates:
        vectors.append(_normalised(embedded[start:start + len(own)]).mean(axis=0))
        start += len(own)
    return _normalised(np.stack(vectors))


def probabilities(image_vectors: np.ndarray, labels: np.ndarray, logit_scale: float,
                  groups: Sequence[int] | None = None) -> np.ndarray:
    """N x L probabilities: the softmax of logit_scale x cosine over the labels of each group (all one group if
    `groups` is None), as CLIP's zero-shot classifier computes them."""
    logits = logit_scale * (np.asarray(image_vectors, np.float32) @ labels.T)
    group_of = np.zeros(labels.shape[0], np.int64) if groups is None else np.asarray(groups)
    result = np.empty_like(logits)
    for group in np.unique(group_of):
        members = group_of == group
        part = logits[:, members]
        part = np.exp(part - part.max(axis=1, keepdims=True))
        result[:, members] = part / part.sum(axis=1, keepdims=True)
    return result


@dataclass(frozen=True)
class TagRule:
    """How a label becomes a tag: within its group, the most probable labels whose probability is at least
    `min_probability`, and at most `per_group` of them. Chosen by measurement (docs/commands.md, "Labels and tags")."""

    min_probability: float = 0.3
    per_group: int = 2


def decide(probs: np.ndarray, rule: TagRule, groups: Sequence[int]) -> list[list[tuple[int, float]]]:
    """For each image, its (label index, probability) tags under `rule`."""
    group_of = np.asarray(groups)
    tags: list[list[tuple[int, float]]] = [[] for _ in range(probs.shape[0])]
    for group in np.unique(group_of):
        members = np.flatnonzero(group_of == group)
        part = probs[:, members]
        order = np.argsort(-part, axis=1)[:, :rule.per_group]
        for row, chosen in enumerate(order):
            for column in chosen:
                if part[row, column] >= rule.min_probability:
                    tags[row].append((int(members[column]), float(part[row, column])))
    return tags


@dataclass(frozen=True)
class Tagger:
    """A vocabulary ready to tag image vectors: its labels, their groups and vectors, the rule and the scale."""

    labels: list[str]
    groups: list[int]
    vectors: np.ndarray
    rule: TagRule
    logit_scale: float

    def tags(self, image_vectors: np.ndarray) -> list[list[tuple[str, float]]]:
        """For each image vector, its (label, probability) tags."""
        if len(image_vectors) == 0:
            return []
        probs = probabilities(image_vectors, self.vectors, self.logit_scale, self.groups)
        return [[(self.labels[i], p) for i, p in chosen] for chosen in decide(probs, self.rule, self.groups)]
