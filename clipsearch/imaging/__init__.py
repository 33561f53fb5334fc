"""Images: a file's bytes to an upright RGB picture (decode), and a picture to a model's input pixels (pixels)."""
