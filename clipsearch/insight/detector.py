"""`clipsearch locate --detector hf:NAME_OR_DIR`: an open-vocabulary detector (OWL-ViT, OWLv2) from transformers.

It is named like the Hugging Face models of `--model hf:…` (clipsearch.models.hf_identity): a local folder
loads offline, a repository comes from the Hugging Face cache or is downloaded once, and a missing one is one
line. It needs no database. Boxes come from the processor's own post-processing, in the upright picture's pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from clipsearch.errors import ModelError, UsageError
from clipsearch.insight.locate import Box, Located, checked_text, non_maximum_suppression, open_picture
from clipsearch.models.device import Device, pick_device
from clipsearch.models.hf_identity import PREFIX, is_hf, local_directory, repository_snapshot
from clipsearch.text import visible

DETECTOR_INPUT = 960  # OWLv2 looks at 960 pixels: decoding much larger buys nothing


def detector_folder(name: str) -> Path:
    if not is_hf(name):
        raise UsageError(f"--detector {name}: name a transformers detector as hf:REPO or hf:DIRECTORY, e.g. "
                         "hf:google/owlv2-base-patch16-ensemble")
    folder = local_directory(name)
    if folder is not None:
        if not (folder / "config.json").is_file():
            raise UsageError(f"--detector {name}: no detector in {folder} (config.json is missing)")
        return folder
    return repository_snapshot(name[len(PREFIX):])


def detect(detector: str, text: str, images: Iterable[str], top: int = 3, device: Device = Device.auto,
           skipped: Callable[[str, str], None] = lambda path, reason: None) -> Iterator[Located]:
    checked_text(text)
    folder = detector_folder(detector)
    import torch
    import transformers

    from clipsearch.models.hf import quiet_transformers

    target = pick_device(device)
    try:
        with quiet_transformers():
            processor = transformers.AutoProcessor.from_pretrained(folder)
            model = transformers.AutoModelForZeroShotObjectDetection.from_pretrained(folder).to(target).eval()
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(f"--detector {detector}: cannot load it ({_one_line(error)})") from error
    for path in images:
        try:
            picture = open_picture(path, DETECTOR_INPUT // 6)
        except UsageError as error:
            skipped(path, str(error).removeprefix(f"{visible(path)}: "))
            continue
        image = picture.image
        try:
            inputs = processor(text=[[text]], images=image, return_tensors="pt").to(target)
            with torch.inference_mode():
                outputs = model(**inputs)
            found = processor.post_process_grounded_object_detection(
                outputs, threshold=0.0, target_sizes=[(image.height, image.width)])[0]
        except (RuntimeError, ValueError) as error:  # a detector whose parts do not fit together
            raise ModelError(f"--detector {detector} failed on {visible(path)}: {_one_line(error)}") from error
        scored = []
        for value, (x0, y0, x1, y1) in zip(found["scores"].tolist(), found["boxes"].tolist()):
            left, top_edge = max(0, round(x0)), max(0, round(y0))
            right, bottom = min(image.width, round(x1)), min(image.height, round(y1))
            if right > left and bottom > top_edge:
                scored.append((value, Box(left, top_edge, right - left, bottom - top_edge)))
        yield from picture.located(path, text, non_maximum_suppression(scored, top))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:160] or type(error).__name__
