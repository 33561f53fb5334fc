"""Switching a database to another model without ever leaving it unable to answer.

The new model is loaded and checked before anything is written. Then every file is embedded with it
into the `staged` table, batch by batch, while queries go on answering from the old vectors with the
old model. Only when every file has its new vector does one transaction swap them in and record the
new model. A switch that fails, is interrupted or killed leaves the database as it was, plus the
staged work, which the next `clipsearch index` continues.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass

from clipsearch.config import DataDir
from clipsearch.models.identity import MODEL_SETTING, ModelIdentity, ResolvedModel
from clipsearch.store.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwitchPlan:
    target: ModelIdentity | None = None  # the model being switched to; None: no switch
    starting: bool = False  # begun by this run (once the model has loaded)

    @property
    def active(self) -> bool:
        return self.target is not None


def pending_switch(catalog: Catalog) -> ModelIdentity | None:
    stored = catalog.staging.switch_target()
    return ModelIdentity.from_dict(stored) if stored else None


def decide(catalog: Catalog, choice: ResolvedModel, asked: bool) -> SwitchPlan:
    """Whether this run switches models: a switch asked for now, or one a previous run left unfinished."""
    pending = pending_switch(catalog)
    if choice.changed and choice.recorded is not None and catalog.files.count():
        if pending is not None and pending.same_model(choice.identity):
            log.info(f"continuing the switch to {pending.describe()} ({progress(catalog)})")
            return SwitchPlan(choice.identity)
        if pending is not None:
            log.info(f"dropping the unfinished switch to {pending.describe()}")
        return SwitchPlan(choice.identity, starting=True)
    if pending is None:
        return SwitchPlan()
    if asked:  # the database's own model, named: the user wants it, not the switch
        log.info(f"abandoning the unfinished switch to {pending.describe()}")
        with catalog.transaction():
            catalog.staging.clear()
            catalog.staging.set_switch_target(None)
        return SwitchPlan()
    log.info(f"continuing the switch to {pending.describe()} ({progress(catalog)})")
    return SwitchPlan(pending)


def progress(catalog: Catalog) -> str:
    return f"{catalog.staging.count()} of about {catalog.files.count()} files embedded with it so far"


def begin(catalog: Catalog, target: ModelIdentity) -> None:
    """Record the switch, once the new model has loaded: from now on its vectors are staged."""
    with catalog.transaction():
        catalog.staging.clear()
        catalog.staging.set_switch_target(target.to_dict())


def complete(catalog: Catalog, data_dir: DataDir, target: ModelIdentity) -> int:
    """Swap the staged vectors in and record the new model, in one transaction; returns how many files went."""
    with catalog.transaction():
        seq = catalog.next_seq()
        result = catalog.staging.swap_in(seq)
        catalog.regions.remove_all(seq)  # in the old model's space: the next run makes them again
        catalog.settings.set_json(MODEL_SETTING, target.to_dict())
        catalog.staging.set_switch_target(None)
        # A new identity for the catalogue: the old HNSW file (other vectors, maybe another size) is rebuilt.
        catalog.settings.set("catalog_id", uuid.uuid4().hex)
    _promote_query_model(data_dir)
    return len(result.removed)


def _promote_query_model(data_dir: DataDir) -> None:
    """The new model's query model, written when the switch began, replaces the old model's."""
    if not data_dir.next_query_model.exists():
        return
    retired = data_dir.query_model.with_name(f"{data_dir.query_model.name}.old{os.getpid()}")
    with contextlib.suppress(OSError):
        if data_dir.query_model.exists():
            os.replace(data_dir.query_model, retired)
        os.replace(data_dir.next_query_model, data_dir.query_model)
        os.replace(data_dir.next_query_model_outcome, data_dir.query_model_outcome)
    shutil.rmtree(retired, ignore_errors=True)
