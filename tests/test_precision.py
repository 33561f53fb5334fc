"""int8 image MLPs on the CPU: faster, and faithful to fp32 embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import TinyModel, model_args, run_cli

from clipsearch.encoder import Encoder
from clipsearch.images import decode_image, prepare_pixels, read_file
from clipsearch.models import ModelSpec, identify


def test_int8_embeddings_stay_within_0_99_cosine_of_fp32(random_vit, photo_library) -> None:
    _, photos = photo_library
    identity = identify(ModelSpec(str(random_vit.config), str(random_vit.checkpoint)))
    exact, fast = Encoder(identity, "cpu", "fp32"), Encoder(identity, "cpu", "int8")
    assert (exact.precision, fast.precision) == ("fp32", "int8")
    size = exact.preprocessing.image_size
    pixels = np.stack([prepare_pixels(decode_image(read_file(str(p.path)), target_size=size).image, size)
                       for p in photos[:24]])
    cosines = np.sum(exact.embed_pixels(pixels) * fast.embed_pixels(pixels), axis=1)
    assert cosines.min() >= 0.99, cosines.min()
    # The text tower is left in fp32: queries are unchanged.
    assert np.array_equal(exact.embed_texts(["a red circle"]), fast.embed_texts(["a red circle"]))


def test_precision_is_an_option_of_index_and_similar(indexed_library, test_model: TinyModel, tmp_path: Path) -> None:
    # The test model's image tower is a ResNet: auto keeps it in fp32, and asking for int8 says why it cannot.
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(indexed_library.photos[0].path.read_bytes())
    refused = run_cli("similar", outside, "--db", indexed_library.db, "--precision", "int8")
    assert refused.exit_code == 2 and "no transformer layers" in refused.stderr
    assert run_cli("index", indexed_library.root, "--db", tmp_path / "db", "--precision", "fp16",
                   *model_args(test_model)).exit_code == 2
