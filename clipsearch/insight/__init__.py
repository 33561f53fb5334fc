"""Understanding a library from its stored vectors: zero-shot labels, tags, near-duplicates, and where in a photo.

vocabulary  the built-in tagging vocabulary, and vocabulary files
classify    `clipsearch classify`: labels ranked by probability for given images
tagging     `clipsearch tag` / `tags`: a vocabulary's tags for every photo, kept as the library grows
duplicates  `clipsearch duplicates`: exact copies, other versions of one picture, and bursts
locate      `clipsearch locate` and `query --where`: boxes where a text fits, by CLIP region search (Box)
detector    `clipsearch locate --detector hf:…`: boxes from an OWL-ViT or OWLv2 detector instead
"""
