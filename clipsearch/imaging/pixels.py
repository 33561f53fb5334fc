"""Pixels as a model wants them: any Pillow mode to RGB, then open_clip's resize and centre crop."""

from __future__ import annotations

import numpy as np
from PIL import Image

from clipsearch.errors import NotAnImageError

RESIZE_MODES = ("shortest", "squash", "longest")
INTERPOLATIONS: dict[str, Image.Resampling] = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
}
_WHITE = (255, 255, 255)
# Wider or taller than this, an image keeps only its centre before it is scaled: the model sees the centre square
# anyway (CLIP's preprocessing crops it), and scaling the whole of an 8 x 1,000,000 strip would need gigabytes.
MAX_ASPECT_RATIO = 3.0


def to_rgb(image: Image.Image) -> Image.Image:
    """Every Pillow mode to a sensible RGB: transparency over white, high bit depths stretched to their range."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in ("I", "F") or mode.startswith("I;"):
        return _stretch_to_rgb(image)
    try:
        if mode == "LAB":
            return _lab_to_rgb(image)
        if "A" in mode or "a" in mode or "transparency" in image.info:
            # Pillow has no direct La (premultiplied) to RGBA conversion; LA is the way round.
            rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")
            background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError:  # Pillow: "conversion from X to Y not supported"
        raise NotAnImageError(f"unsupported image mode {mode}") from None


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    # Pillow's plain convert copies LAB bands as if they were RGB; it takes a colour transform.
    from PIL import ImageCms  # littlecms load only for the rare LAB file

    lab = ImageCms.createProfile("LAB")
    srgb = ImageCms.createProfile("sRGB")
    transform = ImageCms.buildTransform(lab, srgb, "LAB", "RGB")
    converted = ImageCms.applyTransform(image, transform)
    assert converted is not None  # None only with inPlace=True
    return converted


def _stretch_to_rgb(image: Image.Image) -> Image.Image:
    values = np.asarray(image).astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return Image.new("RGB", image.size)
    low = float(values[finite].min())
    high = float(values[finite].max())
    values = np.where(finite, values, low)
    if high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        # A flat image has no range to stretch: place it on the scale its bit depth implies.
        full_scale = 65535.0 if image.mode.startswith("I;16") else 255.0
        scaled = np.full_like(values, min(max(low, 0.0), full_scale) * 255.0 / full_scale)
    grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    return grey.convert("RGB")


def prepare_pixels(
    image: Image.Image, image_size: int, resize_mode: str = "shortest", interpolation: str = "bicubic"
) -> np.ndarray:
    """open_clip's evaluation resize and crop (torchvision semantics on PIL), as uint8 HxWx3; no normalisation."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}, not {resize_mode!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, not {image_size}")
    resample = INTERPOLATIONS[interpolation]
    if image.mode != "RGB":
        image = to_rgb(image)
    if resize_mode == "squash":
        image = _resize(image, (image_size, image_size), resample)
    elif resize_mode == "shortest":
        image = _centre_of_extreme(image)
        width, height = image.size
        # torchvision Resize(int): short side to size, long side truncated (not rounded).
        if width <= height:
            new_size = (image_size, int(image_size * height / width))
        else:
            new_size = (int(image_size * width / height), image_size)
        image = _resize(image, new_size, resample)
    else:
        # open_clip ResizeKeepRatio(longest=1): Python round() on both sides (never below one pixel).
        width, height = image.size
        ratio = max(height / image_size, width / image_size)
        image = _resize(image, (max(1, round(width / ratio)), max(1, round(height / ratio))), resample)
    return np.array(_center_crop_or_pad(image, image_size), dtype=np.uint8)


def _centre_of_extreme(image: Image.Image) -> Image.Image:
    """The centre MAX_ASPECT_RATIO : 1 part of a longer image; others unchanged (so open_clip's pixels exactly)."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    if long <= short * MAX_ASPECT_RATIO:
        return image
    keep = int(short * MAX_ASPECT_RATIO)
    start = (long - keep) // 2
    box = (start, 0, start + keep, height) if width > height else (0, start, width, start + keep)
    return image.crop(box)


def _resize(image: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    if image.size == size:
        return image  # torchvision skips the resize too, so the pixels stay bit-identical
    return image.resize(size, resample)


def _center_crop_or_pad(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width < size or height < size:
        left = (size - width) // 2 if size > width else 0
        top = (size - height) // 2 if size > height else 0
        right = (size - width + 1) // 2 if size > width else 0
        bottom = (size - height + 1) // 2 if size > height else 0
        padded = Image.new("RGB", (width + left + right, height + top + bottom), (0, 0, 0))
        padded.paste(image, (left, top))
        image = padded
        width, height = image.size
        if width == size and height == size:
            return image
    top = round((height - size) / 2.0)  # round half to even, like torchvision
    left = round((width - size) / 2.0)
    return image.crop((left, top, left + size, top + size))
