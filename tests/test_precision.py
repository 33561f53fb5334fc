"""int8 image MLPs on the CPU: faster, and faithful to fp32 embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TinyModel, load_encoder, model_args, run_cli
from PIL import Image

from clipsearch.imaging.decode import decode_image, read_file
from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.models.identity import ModelSpec, identify
from clipsearch.models.openclip import OpenClipEncoder

pytestmark = pytest.mark.slow  # the quick tier (-m "not slow") leaves these to CI


def test_int8_embeddings_stay_within_0_99_cosine_of_fp32(random_vit, photo_library) -> None:
    _, photos = photo_library
    identity = identify(ModelSpec(str(random_vit.config), str(random_vit.checkpoint)))
    exact, fast = load_encoder(identity), load_encoder(identity, "int8")
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
    outside = tmp_path / "outside.png"  # other bytes than any indexed file: embedded, not looked up
    Image.open(indexed_library.photos[0].path).save(outside)
    refused = run_cli("similar", outside, "--db", indexed_library.db, "--precision", "int8")
    assert refused.exit_code == 2 and "no transformer layers" in refused.stderr
    assert run_cli("index", indexed_library.root, "--db", tmp_path / "db", "--precision", "fp16",
                   *model_args(test_model)).exit_code == 2


def test_mobileclip_towers_are_folded_for_inference_without_changing_embeddings(tmp_path: Path) -> None:
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("MobileCLIP2-S0", pretrained=None)
    with torch.no_grad():  # trained-looking BatchNorm statistics, so that folding them has something to get wrong
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    checkpoint = tmp_path / "mobileclip2-s0-random.pt"
    torch.save(model.state_dict(), checkpoint)
    identity = identify(ModelSpec("MobileCLIP2-S0", str(checkpoint)))
    published = load_encoder(identity, reparameterize=False)
    folded = load_encoder(identity)

    def parameters(encoder: OpenClipEncoder) -> int:
        return sum(parameter.numel() for parameter in encoder._model.visual.parameters())

    assert parameters(folded) < parameters(published)
    size = folded.preprocessing.image_size
    pixels = np.random.default_rng(0).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    cosines = np.sum(published.embed_pixels(pixels) * folded.embed_pixels(pixels), axis=1)
    assert cosines.min() >= 0.9999, cosines.min()


def test_int8_and_fp32_databases_give_the_same_top_10(test_vit: TinyModel, photo_library, tmp_path: Path) -> None:
    # The trained ViT test model: its scores mean something, so a changed result would be a real difference.
    # int8 moves scores by a few thousandths, so two results closer than that may trade places, nothing more.
    root, photos = photo_library
    databases = {precision: tmp_path / precision for precision in ("fp32", "auto")}
    for precision, db in databases.items():
        indexed = run_cli("index", root, "--db", db, "--precision", precision, *model_args(test_vit))
        assert indexed.exit_code == 0, indexed.stderr
    texts = ("a blue circle", "a red square", "a green square", "a purple circle", "an arrow pointing up", "a shape")
    searches = [["query", text] for text in texts] + [["similar", str(photo.path)] for photo in photos[:4]]
    for search in searches:
        fp32, int8 = ({r["path"]: r["score"] for r in json.loads(run_cli(*search, "-n", "10", "-f", "json", "--db",
                                                                           databases[p]).stdout)}
                      for p in ("fp32", "auto"))
        assert len(fp32) == 10 and set(int8) == set(fp32), search
        for rank, (ours, theirs) in enumerate(zip(int8, fp32)):
            assert ours == theirs or abs(fp32[ours] - fp32[theirs]) < 0.01, (search, rank, ours, theirs)
