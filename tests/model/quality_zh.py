"""The bilingual test model's quality gate: quality.measure asked in Chinese, in English, and in a mix of both.

quality.measure asks its English queries ("a red circle", "an arrow pointing up") through an embed_texts
callable; here that callable translates each query first (一个红色的圆形, 一个指向上面的箭头), so the very
same scenes, images and scoring serve every language. Both the training script and tests/test_zh_model.py
use this, with a Hugging Face ChineseCLIPModel and its saved processor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from captions_zh import gate_captions_mixed, gate_captions_zh
from PIL import Image
from quality import EmbedImages, EmbedTexts, QualityReport, measure

THRESHOLD = 0.9
# Gated languages; "mixed" (English colour, Chinese shape: "red 圆形") is measured and reported only.
GATED = ("zh", "en")


def projected(output: Any) -> torch.Tensor:
    """get_image_features / get_text_features' embeddings: transformers 4 returns them as a tensor, 5 as the
    pooler_output of a model output."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def hf_embedders(model: Any, processor: Any, device: str | torch.device = "cpu") -> tuple[EmbedImages, EmbedTexts]:
    """embed_images / embed_texts for quality.measure, through the model's own processor and feature methods."""

    def features(output: Any) -> np.ndarray:
        return torch.nn.functional.normalize(projected(output).float(), dim=-1).cpu().numpy()

    def embed_images(images: Sequence[Image.Image]) -> np.ndarray:
        inputs = processor.image_processor(images=list(images), return_tensors="pt")
        with torch.inference_mode():
            return features(model.get_image_features(pixel_values=inputs["pixel_values"].to(device)))

    def embed_texts(texts: Sequence[str]) -> np.ndarray:
        inputs = processor.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            return features(model.get_text_features(**{k: v.to(device) for k, v in inputs.items()}))

    return embed_images, embed_texts


def _translated(embed_texts: EmbedTexts, table: dict[str, str] | None) -> EmbedTexts:
    if table is None:
        return embed_texts
    return lambda texts: embed_texts([table[t] for t in texts])


def measure_languages(embed_images: EmbedImages, embed_texts: EmbedTexts) -> dict[str, QualityReport]:
    """The gate's report for each way of asking: "zh", "en" and "mixed"."""
    images = _cached(embed_images)
    tables: dict[str, dict[str, str] | None] = {"zh": gate_captions_zh(), "en": None, "mixed": gate_captions_mixed()}
    return {language: measure(images, _translated(embed_texts, table)) for language, table in tables.items()}


def _cached(embed_images: EmbedImages) -> EmbedImages:
    """measure renders the same scenes for every language: embed them once."""
    cache: dict[tuple[bytes, ...], np.ndarray] = {}

    def embed(images: Sequence[Image.Image]) -> np.ndarray:
        key = tuple(im.tobytes() for im in images)
        if key not in cache:
            cache[key] = embed_images(images)
        return cache[key]

    return embed


def passes(reports: dict[str, QualityReport]) -> bool:
    return all(reports[lang].shape_top1 >= THRESHOLD and reports[lang].arrow_accuracy >= THRESHOLD for lang in GATED)


def summary(reports: dict[str, QualityReport]) -> str:
    return "\n".join(f"  {lang}{'' if lang in GATED else ' (not gated)'}: {report.summary()}"
                     for lang, report in reports.items())
