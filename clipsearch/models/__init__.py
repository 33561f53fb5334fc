"""Models: which model a database uses, loading it, and running it.

identity           what a database records about its model, and whether a request matches it (no torch)
device             devices and precisions, named without importing torch
preprocessing      how a model wants its input pixels
backend            the Encoder interface every model backend provides, and load_encoder()
openclip           the open_clip backend (torch)
hub                reaching model weights: the download cache, offline mode, quiet logs
query_model        the query model: a model's towers in plain numpy, so queries skip torch
query_model_export writing and checking the query model from a loaded open_clip model
tokenizer          CLIP's BPE tokenizer without torch
"""
