"""Understanding a library from its stored vectors: zero-shot labels, tags, and near-duplicates.

vocabulary  the built-in tagging vocabulary, and vocabulary files
classify    `clipsearch classify`: labels ranked by probability for given images
tagging     `clipsearch tag` / `tags`: a vocabulary's tags for every photo, kept as the library grows
duplicates  `clipsearch duplicates`: exact copies, other versions of one picture, and bursts
"""
