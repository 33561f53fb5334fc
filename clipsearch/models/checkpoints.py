"""What a local checkpoint file holds, when it does not fit the model it was given for.

Reading the tensors' shapes is cheap next to building the model, and tells which of open_clip's
architectures the weights belong to: that turns "size mismatch for visual.conv1.weight" into
"it looks like ViT-B-16".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from clipsearch.errors import ModelError
from clipsearch.models.identity import ModelIdentity, builtin_configs


def checkpoint_error(identity: ModelIdentity, error: BaseException) -> ModelError:
    """One line for a checkpoint that torch cannot read, or that does not fit `identity`'s architecture."""
    path = identity.checkpoint_path
    reason = " ".join(str(error).split())[:160] or type(error).__name__
    try:
        state = _state_dict(Path(path or ""))
    except Exception as unreadable:
        detail = " ".join(str(unreadable).split())[:120] or type(unreadable).__name__
        return ModelError(f"--pretrained {path}: not a model checkpoint that torch can read ({detail})")
    fits = [name for name in architectures_fitting(state) if name != identity.architecture]
    hint = f"; it looks like weights for {' or '.join(fits[:3])} (pass that as --model)" if fits else ""
    return ModelError(f"the checkpoint {path} does not fit the model {identity.architecture} ({reason}){hint}")


def _state_dict(path: Path) -> dict[str, Any]:
    from open_clip.factory import load_state_dict

    state = load_state_dict(str(path))
    if not isinstance(state, dict) or not state:
        raise ValueError("it holds no tensors")
    return state


def _shape(state: dict[str, Any], key: str) -> tuple[int, ...] | None:
    tensor = state.get(key)
    return tuple(tensor.shape) if hasattr(tensor, "shape") else None


def _layers(state: dict[str, Any], prefix: str) -> int | None:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(match.group(1)) for key in state if (match := pattern.match(key))}
    return max(found) + 1 if found else None


def _signature(state: dict[str, Any]) -> dict[str, int]:
    """The architecture facts a state dict's shapes reveal (only those it reveals)."""
    facts: dict[str, int] = {}
    if projection := _shape(state, "text_projection"):
        facts["embed_dim"] = projection[-1]
    if tokens := _shape(state, "token_embedding.weight"):
        facts["text_width"] = tokens[1]
    if (text_layers := _layers(state, "transformer.resblocks.")) is not None:
        facts["text_layers"] = text_layers
    patches = _shape(state, "visual.conv1.weight")
    if patches and len(patches) == 4 and patches[2] == patches[3] and "visual.class_embedding" in state:
        facts["vision_width"], facts["patch_size"] = patches[0], patches[2]  # a ViT's patch embedding
    if (vision_layers := _layers(state, "visual.transformer.resblocks.")) is not None:
        facts["vision_layers"] = vision_layers
    return facts


def _config_facts(config: dict[str, Any]) -> dict[str, Any]:
    vision, text = config.get("vision_cfg", {}), config.get("text_cfg", {})
    return {"embed_dim": config.get("embed_dim"), "text_width": text.get("width"), "text_layers": text.get("layers"),
            "vision_width": vision.get("width"), "patch_size": vision.get("patch_size"),
            "vision_layers": vision.get("layers")}


def architectures_fitting(state: dict[str, Any]) -> list[str]:
    """open_clip's architectures whose shapes agree with every fact the state dict reveals."""
    facts = _signature(state)
    folder = builtin_configs()
    if len(facts) < 2 or folder is None:
        return []
    fitting = []
    for path in sorted(folder.glob("*.json")):
        try:
            expected = _config_facts(json.loads(path.read_text()))
        except (OSError, ValueError, AttributeError):
            continue
        if all(expected.get(key) == value for key, value in facts.items()):
            fitting.append(path.stem)
    return fitting
