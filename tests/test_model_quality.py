"""The committed test model really links words and pictures: the gate every semantic test relies on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from helpers import TinyModel, load_encoder
from quality import measure

from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.models.identity import ModelSpec, identify
from clipsearch.models.query_model import QueryModel

MAX_CHECKPOINT_BYTES = 16 * 1024 * 1024


def _images_through(embed_pixels: Callable[[np.ndarray], np.ndarray], settings: Any) -> Callable:
    def embed_images(images):
        pixels = np.stack([prepare_pixels(im, settings.image_size, settings.resize_mode, settings.interpolation)
                           for im in images])
        return embed_pixels(pixels)

    return embed_images


def test_the_model_passes_its_quality_gate_through_the_product_encoder(test_model: TinyModel) -> None:
    # The product's real path: the config registered with open_clip, the checkpoint as a local --pretrained file.
    encoder = load_encoder(identify(ModelSpec(str(test_model.config), str(test_model.checkpoint))))
    report = measure(_images_through(encoder.embed_pixels, encoder.preprocessing), encoder.embed_texts)
    assert report.shape_top1 >= 0.9 and report.arrow_accuracy >= 0.9, report.summary()


def test_int8_and_the_numpy_copy_keep_the_vit_twin_s_gate_figures(test_vit: TinyModel, tmp_path: Path) -> None:
    # What a CPU really runs: int8 image MLPs when indexing, the numpy copy when searching. The ViT twin is
    # weaker than the ResNet test model (it learns shapes and arrows more slowly), so what is checked is that
    # neither path changes what fp32 gets right: the copy not at all, int8 by one near-tie at most.
    identity = identify(ModelSpec(str(test_vit.config), str(test_vit.checkpoint)))
    quantised = load_encoder(identity, "auto", query_model_to=tmp_path / "copy")
    exact = load_encoder(identity)
    copy = QueryModel.open(tmp_path / "copy", identity)
    assert quantised.precision == "int8" and copy is not None and copy.embeds_images
    reports = {name: measure(_images_through(encoder.embed_pixels, exact.preprocessing), encoder.embed_texts)
               for name, encoder in (("fp32", exact), ("int8", quantised), ("numpy copy", copy))}
    assert reports["fp32"].shape_top1 >= 0.6 and reports["fp32"].arrow_accuracy >= 0.5, reports["fp32"].summary()
    assert reports["numpy copy"] == reports["fp32"], reports["numpy copy"].summary()
    for part in ("shape_failures", "arrow_failures"):
        assert len(set(getattr(reports["int8"], part)) ^ set(getattr(reports["fp32"], part))) <= 1, part


def test_the_checkpoints_are_small_enough_to_commit(test_model: TinyModel, test_vit: TinyModel) -> None:
    assert test_model.checkpoint.stat().st_size <= MAX_CHECKPOINT_BYTES
    assert test_vit.checkpoint.stat().st_size <= MAX_CHECKPOINT_BYTES
