"""Where clipsearch keeps its data, and the defaults every command shares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "clipsearch"
DB_ENV_VAR = "CLIPSEARCH_DB"
NO_SERVER_ENV_VAR = "CLIPSEARCH_NO_SERVER"  # set: never use a running `clipsearch serve`
CATALOG_FILENAME = "catalog.db"
HNSW_FILENAME = "vectors.hnsw"
HNSW_STATE_FILENAME = "vectors.json"
LOCK_FILENAME = "writer.lock"
QUERY_MODEL_DIRNAME = "query-model"
QUERY_MODEL_OUTCOME_FILENAME = "query-model.json"
THUMBNAILS_DIRNAME = "thumbnails"

# docs/models.md, "Choosing a model", says why: rclip's model and weights, so no loss of retrieval quality against it,
# and fast on a CPU with int8 image MLPs.
DEFAULT_MODEL = "ViT-B-32-256"
DEFAULT_PRETRAINED = "datacomp_s34b_b86k"
DEFAULT_MAX_MEGAPIXELS = 200.0
DEFAULT_RESULTS = 10


@dataclass(frozen=True)
class DataDir:
    """The files of one clipsearch database: the catalogue (source of truth) and the caches derived from it."""

    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / CATALOG_FILENAME

    @property
    def hnsw(self) -> Path:
        """The HNSW vector index, a cache of the catalogue's vectors."""
        return self.root / HNSW_FILENAME

    @property
    def hnsw_state(self) -> Path:
        """Which catalogue, change and file contents the HNSW file belongs to."""
        return self.root / HNSW_STATE_FILENAME

    @property
    def regions_hnsw(self) -> Path:
        """The HNSW index of the region vectors (`index --regions`), derived like the files' one."""
        return self.root / "regions.hnsw"

    @property
    def regions_hnsw_state(self) -> Path:
        return self.root / "regions.json"

    @property
    def openvino(self) -> Path:
        """The image tower converted to OpenVINO for indexing on a CPU, with its probes (a cache)."""
        return self.root / "openvino"

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILENAME

    @property
    def query_model(self) -> Path:
        """The query model: the model's towers as plain numpy, so that queries skip importing torch."""
        return self.root / QUERY_MODEL_DIRNAME

    @property
    def query_model_outcome(self) -> Path:
        """What the last attempt to write the query model gave (written, or why not), for `status` and retries."""
        return self.root / QUERY_MODEL_OUTCOME_FILENAME

    @property
    def thumbnails(self) -> Path:
        """The thumbnail cache: small JPEGs for sheets, previews and the web page, made on demand."""
        return self.root / THUMBNAILS_DIRNAME

    @property
    def next_query_model(self) -> Path:
        """The query model of the model a switch is moving to, put in place when the switch completes."""
        return self.root / f"{QUERY_MODEL_DIRNAME}.next"

    @property
    def next_query_model_outcome(self) -> Path:
        return self.root / f"{QUERY_MODEL_DIRNAME}.next.json"


def default_data_root() -> Path:
    """$XDG_DATA_HOME/clipsearch on Linux (~/.local/share/clipsearch), the platform's own place elsewhere."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def resolve_data_dir(db: Path | None) -> DataDir:
    """--db wins, then CLIPSEARCH_DB, then the user's data folder."""
    if db is None and os.environ.get(DB_ENV_VAR):
        db = Path(os.environ[DB_ENV_VAR])
    root = (db or default_data_root()).expanduser()
    return DataDir(root.absolute())
