"""Tiny random transformers models, built in a test's folder: for the mechanics of each kind, not for quality.

Each has its own tokenizer, trained here with `tokenizers` on a few captions, saved as transformers saves it.
"""

from __future__ import annotations

import json
from pathlib import Path

CAPTIONS = ["a red circle", "a blue square", "an arrow pointing left", "sunset beach", "un cercle rouge",
            "红色的圆形", "ein roter Kreis"] * 10
LAYERS = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def tiny_clip(folder: Path) -> Path:
    """A CLIPModel whose end-of-text token is neither the highest id nor transformers' legacy 2 (so pooling must
    look for it)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    start, end = "<|startoftext|>", "<|endoftext|>"
    tokenizer = Tokenizer(models.BPE(unk_token=end))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # Ids 0 and 1 are not the text's ends: OWL-ViT takes a query starting with id 0 for padding.
    tokenizer.train_from_iterator(CAPTIONS, trainers.BpeTrainer(vocab_size=300,
                                                                special_tokens=["<pad>", "<unk>", start, end]))
    ids = {token: tokenizer.token_to_id(token) for token in (start, end)}
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{start} $A {end}",
                                                             special_tokens=list(ids.items()))
    text = dict(LAYERS, vocab_size=tokenizer.get_vocab_size(), max_position_embeddings=32, eos_token_id=ids[end],
                bos_token_id=ids[start], pad_token_id=ids[end])
    config = CLIPConfig(text_config=text, vision_config=dict(LAYERS, image_size=32, patch_size=16), projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=start, eos_token=end, pad_token=end, unk_token=end,
                            model_max_length=32).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def tiny_siglip(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel

    torch.manual_seed(0)
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.train_from_iterator(CAPTIONS, trainers.UnigramTrainer(vocab_size=100, unk_token="<unk>",
                                                                    special_tokens=["<pad>", "</s>", "<unk>"]))
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                             special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
    text = dict(LAYERS, vocab_size=tokenizer.get_vocab_size(), max_position_embeddings=16)
    SiglipModel(SiglipConfig(text_config=text, vision_config=dict(LAYERS, image_size=32, patch_size=16))
                ).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                            model_max_length=16).save_pretrained(folder)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def tiny_xlm_roberta_open_clip(folder: Path) -> tuple[Path, Path]:
    """An open_clip config whose text tower is a tiny XLM-RoBERTa from a local folder, and random weights for it."""
    import open_clip
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaTokenizerFast

    text = folder / "tiny-xlm-roberta"
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer.train_from_iterator(CAPTIONS, trainers.UnigramTrainer(vocab_size=100, special_tokens=specials,
                                                                    unk_token="<unk>"))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tokenizer.token_to_id("<s>")),
                                              ("</s>", tokenizer.token_to_id("</s>"))])
    XLMRobertaTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                            model_max_length=32).save_pretrained(text)
    XLMRobertaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=40, pad_token_id=1).save_pretrained(text)
    config = folder / "tiny-xlm-roberta-ViT.json"
    config.write_text(json.dumps({
        "embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"hf_model_name": str(text), "hf_tokenizer_name": str(text), "hf_model_pretrained": False,
                     "hf_proj_type": "mlp", "hf_pooler_type": "mean_pooler", "context_length": 32}}))
    open_clip.add_model_config(config)
    weights = folder / "tiny-xlm-roberta-ViT.pt"
    torch.save(open_clip.create_model("tiny-xlm-roberta-ViT", pretrained_hf=False).state_dict(), weights)
    return config, weights
