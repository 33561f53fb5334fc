"""Queries to vectors: texts and image files, through the query model when it can, else the model itself.

Models load on first use, and give their memory back before the index loads (release()): the index
is the largest thing a query process holds, and embedding every query first keeps the two apart.
"""

from __future__ import annotations

import contextlib
import gc
import os

import numpy as np

from clipsearch.config import DataDir
from clipsearch.errors import ImageError, UsageError
from clipsearch.imaging.decode import check_image, decode_image, read_file
from clipsearch.imaging.isolated import model_pixels
from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.models.device import Device, Precision
from clipsearch.models.identity import ModelIdentity
from clipsearch.models.query_model import QueryModel
from clipsearch.models.query_model_export import refresh_query_model
from clipsearch.models.runtime import Encoder, load_encoder
from clipsearch.text import visible

TEXT_CACHE_SIZE = 4096  # vectors of recent texts: a server's repeated queries embed once


class QueryEmbedder:
    def __init__(self, data_dir: DataDir, identity: ModelIdentity, device: Device = Device.auto,
                 precision: Precision = Precision.auto, isolate_decoding: bool = False) -> None:
        self._data_dir = data_dir
        # A resident server decodes pictures from outside the catalogue in a child, where a decoder bomb costs only
        # the child; a one-shot command decodes its user's own file itself (the header's byte budget holds either
        # way), saving the child's start on every `similar` of a new file.
        self._isolate_decoding = isolate_decoding
        self.identity = identity
        self._device = Device(device)
        self._precision = Precision(precision)
        self._encoder: Encoder | None = None
        # The query model answers on the CPU without importing torch; asking for a device or int8 means torch.
        self._numpy_allowed = self._device in (Device.auto, Device.cpu) and self._precision is not Precision.int8
        self._query_model: QueryModel | None = None
        self._looked_for_query_model = False
        self._text_vectors: dict[str, np.ndarray] = {}

    @property
    def encoder(self) -> Encoder:
        """The model itself, loaded on first use. Having paid for loading it, write its query model if that is
        missing, so that the queries after this one skip torch."""
        if self._encoder is None:
            encoder = load_encoder(self.identity, self._device)
            if refresh_query_model(encoder, self._data_dir.query_model, self._data_dir.query_model_outcome):
                self._looked_for_query_model = False  # there may be one now: every later query takes its path
            encoder.use_precision(self._precision)
            self._encoder = encoder
        return self._encoder

    @property
    def query_model(self) -> QueryModel | None:
        """The query model, when queries can use it: no torch import, and the same answers in every process."""
        if not self._numpy_allowed:
            return None
        if self._query_model is None and not self._looked_for_query_model:
            self._looked_for_query_model = True
            self._query_model = QueryModel.open(self._data_dir.query_model, self.identity)
            if self._query_model is None and self._encoder is None:
                self.encoder  # noqa: B018 (loads the model, which writes the query model if it can)
                return self.query_model
        return self._query_model

    @property
    def logit_scale(self) -> float:
        """The model's logit scale, from the query model when there is one (no torch), else the model."""
        query_model = self.query_model
        return query_model.logit_scale if query_model is not None else self.encoder.logit_scale

    def texts(self, texts: list[str]) -> np.ndarray:
        if any(not text.strip() for text in texts):
            raise UsageError("the query is empty: describe what you are looking for")
        new = list(dict.fromkeys(t for t in texts if t not in self._text_vectors))
        if new:
            runner = self.query_model or self.encoder
            for text, vector in zip(new, runner.embed_texts(new)):
                self._text_vectors[text] = vector
        vectors = np.stack([self._text_vectors[t] for t in texts]) if texts else np.empty((0, self.identity.dim))
        while len(self._text_vectors) > TEXT_CACHE_SIZE:  # oldest first: dicts keep insertion order
            del self._text_vectors[next(iter(self._text_vectors))]
        return vectors

    def image_file(self, path: str, data: bytes | None = None) -> np.ndarray:
        """Embed an image file; what makes it unusable (its header: too large, too small, not an image) is said
        before any model loads."""
        data = read_query_file(path) if data is None else data
        try:
            check_image(data)
        except ImageError as error:
            raise UsageError(f"{visible(path)}: {error}") from error
        runner = self._image_runner()
        settings = runner.preprocessing
        assert settings is not None
        try:
            if self._isolate_decoding:
                pixels = model_pixels(data, settings.image_size, settings.resize_mode, settings.interpolation)
            else:
                pixels = prepare_pixels(decode_image(data, target_size=settings.image_size).image,
                                        settings.image_size, settings.resize_mode, settings.interpolation)
        except ImageError as error:
            raise UsageError(f"{visible(path)}: {error}") from error
        return runner.embed_pixels(pixels[None])[0]

    def pictures(self, images: list) -> np.ndarray:
        """Embed decoded pictures (PIL images), through the query model's image tower when it has one."""
        runner = self._image_runner()
        settings = runner.preprocessing
        assert settings is not None
        pixels = np.stack([prepare_pixels(image, settings.image_size, settings.resize_mode, settings.interpolation)
                           for image in images])
        return runner.embed_pixels(pixels)

    def _image_runner(self):
        """The query model when it has an image tower (no torch), else the model itself."""
        query_model = self.query_model
        return query_model if query_model is not None and query_model.embeds_images else self.encoder

    @property
    def image_size(self) -> int:
        settings = self._image_runner().preprocessing
        assert settings is not None
        return settings.image_size

    def release(self) -> None:
        """Give the models' memory back (they load again if asked)."""
        if self._encoder is None and self._query_model is None:
            return
        self._encoder = self._query_model = None
        self._looked_for_query_model = False
        gc.collect()
        _return_freed_memory()


def read_query_file(path: str) -> bytes:
    """The bytes of an image named as a query, or one line saying why it cannot be read."""
    # visible(): an error is one line on stderr, even for a name with a newline in it.
    if not os.path.lexists(path):
        raise UsageError(f"{visible(path)}: no such file")
    try:
        return read_file(path)
    except ImageError as error:
        raise UsageError(f"{visible(path)}: {error}") from error


def _return_freed_memory() -> None:
    """Hand the heap that freed model weights leave behind back to the OS (glibc keeps it for reuse otherwise)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
