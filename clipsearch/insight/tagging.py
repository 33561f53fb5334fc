"""`clipsearch tag`: label every photo from a vocabulary, and remember the vocabulary for the photos to come.

The labels' vectors are computed once per vocabulary and model and kept in the catalogue with the
rule; tagging is then matrix work over the stored image vectors, and each later `index` tags the new
photos as it commits them. A new vocabulary, rule or model tags everything again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from clipsearch.errors import UsageError
from clipsearch.insight.vocabulary import Vocabulary
from clipsearch.models.zero_shot import Tagger, TagRule, label_vectors
from clipsearch.search.searcher import Searcher
from clipsearch.store.catalog import Catalog
from clipsearch.store.tags import VOCABULARY_SETTING, TaggedFile

CHUNK = 20_000


@dataclass(frozen=True)
class TagReport:
    photos: int
    tagged: int  # photos that got at least one tag
    tags: int
    labels: int


def check_rule(rule: TagRule) -> None:
    if not 0 < rule.min_probability <= 1:
        raise UsageError(f"--min-probability {rule.min_probability}: must be above 0 and at most 1")


def tag_library(searcher: Searcher, vocabulary: Vocabulary, rule: TagRule) -> TagReport:
    """Tag every photo of the searcher's database (the caller holds the writer lock)."""
    check_rule(rule)
    embedder = searcher.embedder
    vectors = label_vectors(embedder.texts, vocabulary.labels, vocabulary.label_templates)
    tagger = Tagger(vocabulary.labels, vocabulary.label_groups, vectors, rule, embedder.logit_scale)
    return write_tags(searcher.catalog, tagger, vocabulary, searcher.identity.to_dict())


def write_tags(catalog: Catalog, tagger: Tagger, vocabulary: Vocabulary, model: dict) -> TagReport:
    """Record the vocabulary and tag every photo, in one transaction (the caller holds the writer lock)."""
    tagged = tags = photos = 0
    with catalog.transaction():
        catalog.settings.set_json(VOCABULARY_SETTING, {"vocabulary": vocabulary.to_dict(),
                                                       "rule": asdict(tagger.rule),
                                                       "logit_scale": tagger.logit_scale, "model": model})
        catalog.tags.set_label_vectors(tagger.labels, tagger.groups, tagger.vectors)
        catalog.tags.clear()
        for ids, image_vectors in catalog.files.vectors(chunk=CHUNK):
            rows = [(int(file_id), label, probability)
                    for file_id, chosen in zip(ids.tolist(), tagger.tags(image_vectors))
                    for label, probability in chosen]
            catalog.tags.add(rows)
            photos += len(ids)
            tags += len(rows)
            tagged += len({row[0] for row in rows})
    return TagReport(photos, tagged, tags, len(tagger.labels))


def tagged(catalog: Catalog, label: str) -> list[TaggedFile]:
    if not catalog.tags.exists(label):
        raise UsageError(f"no photo has the tag {label!r} (`clipsearch tags` lists the tags)")
    return catalog.tags.tagged(label)
