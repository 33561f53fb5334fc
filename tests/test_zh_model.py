"""The bilingual test model, loaded offline with Hugging Face transformers, links Chinese and English words to pictures.

tests/model/clipsearch-test-zh is a tiny ChineseCLIPModel trained by tests/model/train_zh.py on the same scenes
as the open_clip test models, with Chinese and English captions. Its gate is quality.measure asked in each
language (quality_zh.py): colour-and-shape top-1 and arrow direction, on scenes from a seed never trained on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import MODEL_DIR
from quality_zh import GATED, THRESHOLD, hf_embedders, measure_languages, summary

# Before transformers (and huggingface_hub under it) is imported: nothing may be downloaded.
os.environ["HF_HUB_OFFLINE"] = "1"

ZH_MODEL = MODEL_DIR / "clipsearch-test-zh"
MAX_FOLDER_BYTES = 16 * 1024 * 1024
# A normal Hugging Face folder, readable by transformers 4 and 5 alike.
EXPECTED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json",
                  "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@pytest.fixture(scope="module")
def zh_model() -> tuple[Any, Any]:
    """(model in float32, processor), loaded offline from the committed folder."""
    if not (ZH_MODEL / "config.json").is_file():
        pytest.skip(f"the bilingual test model {ZH_MODEL} is missing; train it with tests/model/train_zh.py")
    transformers = pytest.importorskip(
        "transformers", reason="the bilingual test model needs transformers and tokenizers (pip install transformers)")
    # The weights are stored in float16; the gate is measured in float32, as a CPU runs it.
    model = transformers.AutoModel.from_pretrained(ZH_MODEL, local_files_only=True).float().eval()
    processor = transformers.AutoProcessor.from_pretrained(ZH_MODEL, local_files_only=True)
    return model, processor


def test_the_bilingual_model_passes_its_gate_in_chinese_and_in_english(zh_model: tuple[Any, Any]) -> None:
    reports = measure_languages(*hf_embedders(*zh_model))
    failing = [
        language for language in GATED
        if reports[language].shape_top1 < THRESHOLD or reports[language].arrow_accuracy < THRESHOLD
    ]
    assert not failing, f"below {THRESHOLD:.0%} in {', '.join(failing)}:\n{summary(reports)}"


def test_the_folder_is_a_small_hugging_face_model_directory(zh_model: tuple[Any, Any]) -> None:
    model, processor = zh_model
    assert type(model).__name__ == "ChineseCLIPModel"
    assert model.config.vision_config.image_size == 64
    missing = [name for name in EXPECTED_FILES if not (ZH_MODEL / name).is_file()]
    assert not missing, f"missing from {ZH_MODEL}: {missing}"
    size = sum(path.stat().st_size for path in Path(ZH_MODEL).iterdir())
    assert size <= MAX_FOLDER_BYTES, f"{size / 1e6:.1f} MB"
    # Both languages' words are whole tokens of the vocabulary, never [UNK].
    tokens = processor.tokenizer.tokenize("一个指向左边的紫色箭头和一个橙色的五角星 a purple arrow pointing left")
    assert processor.tokenizer.unk_token not in tokens, tokens
