"""`clipsearch tag`: label every photo from a vocabulary, and remember the vocabulary for the photos to come.

The labels' vectors are computed once per vocabulary and model and kept in the catalogue with the
rule; tagging is then matrix work over the stored image vectors, and each later `index` tags the new
photos as it commits them. A new vocabulary, rule or model tags everything again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from clipsearch.config import DataDir
from clipsearch.errors import UsageError
from clipsearch.insight.vocabulary import Vocabulary
from clipsearch.models.device import Device
from clipsearch.models.zero_shot import Tagger, TagRule, label_vectors
from clipsearch.search.searcher import Searcher
from clipsearch.store.catalog import Catalog
from clipsearch.store.lock import writer_lock
from clipsearch.store.tags_table import VOCABULARY_SETTING, TaggedFile

CHUNK = 20_000


@dataclass(frozen=True)
class TagReport:
    photos: int
    tagged: int  # photos that got at least one tag
    tags: int
    labels: int


def tag_library(data_dir: DataDir, vocabulary: Vocabulary, rule: TagRule, *, wait: bool = True,
                device: Device = Device.auto) -> TagReport:
    if not 0 < rule.min_probability <= 1:
        raise UsageError(f"--min-probability {rule.min_probability}: must be above 0 and at most 1")
    with writer_lock(data_dir, wait):
        searcher = Searcher(data_dir, device=device)
        try:
            embedder = searcher.embedder
            vectors = label_vectors(embedder.texts, vocabulary.labels, vocabulary.label_templates)
            tagger = Tagger(vocabulary.labels, vocabulary.label_groups, vectors, rule, embedder.logit_scale)
            return write_tags(searcher.catalog, tagger, vocabulary, searcher.identity.to_dict())
        finally:
            searcher.close()


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


def tag_counts(data_dir: DataDir) -> list[tuple[str, int]]:
    catalog = Catalog(data_dir.catalog)
    try:
        return catalog.tags.counts()
    finally:
        catalog.close()


def tagged(data_dir: DataDir, label: str) -> list[TaggedFile]:
    catalog = Catalog(data_dir.catalog)
    try:
        if not catalog.tags.exists(label):
            raise UsageError(f"no photo has the tag {label!r} (`clipsearch tags` lists the tags)")
        return catalog.tags.tagged(label)
    finally:
        catalog.close()
