"""New photos get the database's tags as they are committed, when a vocabulary was set with `clipsearch tag`."""

from __future__ import annotations

from collections.abc import Sequence

from clipsearch.models.identity import ModelIdentity
from clipsearch.models.zero_shot import Tagger, TagRule
from clipsearch.store.catalog import Catalog
from clipsearch.store.rows import NewFile
from clipsearch.store.tags import VOCABULARY_SETTING


def stored_tagger(catalog: Catalog, identity: ModelIdentity) -> Tagger | None:
    """The database's vocabulary as a Tagger, when it was made for this model; None otherwise."""
    settings = catalog.settings.get_json(VOCABULARY_SETTING)
    stored = catalog.tags.label_vectors()
    if not settings or stored is None or not ModelIdentity.from_dict(settings.get("model") or {}).same_model(identity):
        return None
    labels, groups, vectors = stored
    return Tagger(labels, groups, vectors, TagRule(**settings["rule"]), float(settings["logit_scale"]))


def tag_new_files(catalog: Catalog, tagger: Tagger, files: Sequence[NewFile]) -> None:
    """Inside the batch's transaction: the tags of files just written."""
    if not files:
        return
    import numpy as np

    ids = catalog.files.ids_of([f.path for f in files])
    chosen = tagger.tags(np.stack([f.vector for f in files]))
    rows = [(ids[f.path], label, probability) for f, tags in zip(files, chosen) if f.path in ids
            for label, probability in tags]
    catalog.tags.replace({ids[f.path] for f in files if f.path in ids}, rows)
