"""The committed test model really links words and pictures: the gate every semantic test relies on."""

from __future__ import annotations

import numpy as np
from conftest import TinyModel
from quality import measure

from clipsearch.encoder import Encoder
from clipsearch.images import prepare_pixels
from clipsearch.models import ModelSpec, identify

MAX_CHECKPOINT_BYTES = 16 * 1024 * 1024


def test_the_model_passes_its_quality_gate_through_the_product_encoder(test_model: TinyModel) -> None:
    # The product's real path: the config registered with open_clip, the checkpoint as a local --pretrained file.
    encoder = Encoder(identify(ModelSpec(str(test_model.config), str(test_model.checkpoint))), "cpu")
    settings = encoder.preprocessing

    def embed_images(images):
        pixels = np.stack([prepare_pixels(im, settings.image_size, settings.resize_mode, settings.interpolation)
                           for im in images])
        return encoder.embed_pixels(pixels)

    report = measure(embed_images, encoder.embed_texts)
    assert report.shape_top1 >= 0.9 and report.arrow_accuracy >= 0.9, report.summary()


def test_the_checkpoint_is_small_enough_to_commit(test_model: TinyModel) -> None:
    assert test_model.checkpoint.stat().st_size <= MAX_CHECKPOINT_BYTES
