"""Models: which model a database uses, loading it, and running it.

identity            what a database records about its model, and whether a request matches it (no torch)
hf_identity         `hf:REPO` and `hf:DIRECTORY` models: their files and their identity
checkpoints         what a local checkpoint file holds, when it does not fit the model it was given for
device              devices and precisions, named without importing torch
preprocessing       how a model wants its input pixels
hub                 reaching model weights: the download cache, offline mode, quiet logs
runtime             running a model: the Encoder interface, load_encoder(), and the indexing engine (OpenVINO or torch)
openclip            the open_clip backend (torch)
hf                  the Hugging Face transformers backend (torch)
openvino            the image tower on OpenVINO for indexing on a CPU: converted once, checked at every load
zero_shot           zero-shot labels: CLIP's classifier built from texts, applied to stored image vectors
query_model         the query model: a model's towers in plain numpy, so queries skip torch
query_bert          the query model's BERT-style text tower and `tokenizers` tokenizer (Hugging Face models)
query_model_export  writing and checking the query model from a loaded open_clip model
hf_export           writing the query model of a transformers model
tokenizer           CLIP's BPE tokenizer without torch
"""
