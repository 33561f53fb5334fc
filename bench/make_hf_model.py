"""Write a transformers model folder of a real model's size with random weights, for timing (weights cannot be
downloaded here, and random ones cost the same time as trained ones).

    python bench/make_hf_model.py /tmp/cn-clip-b16                       # Chinese-CLIP ViT-B/16's shape
    python bench/make_hf_model.py /tmp/clip-b32 --kind clip-vit-base-patch32

chinese-clip-vit-base-patch16: ViT-B/16 image tower and a 12-layer, 768-wide BERT (RoBERTa-wwm-base) text tower
with Chinese-BERT's 21,128-token vocabulary, as transformers' ChineseCLIPConfig defaults give; the tokenizer is
a WordPiece over single CJK characters and ASCII words (how Chinese BERT tokenizes Chinese), saved as
transformers saves a fast tokenizer. clip-vit-base-patch32: OpenAI CLIP ViT-B/32's shape with a byte-level BPE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHINESE_VOCAB = 21128


def chinese_clip(folder: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast, ChineseCLIPConfig, ChineseCLIPImageProcessor, ChineseCLIPModel

    ascii_words = [chr(c) for c in range(33, 127)] + ["##" + chr(c) for c in range(97, 123)]
    characters = [chr(c) for c in range(0x4E00, 0x4E00 + CHINESE_VOCAB - len(SPECIALS) - len(ascii_words))]
    vocab = {token: index for index, token in enumerate(SPECIALS + ascii_words + characters)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    config = ChineseCLIPConfig(text_config={"vocab_size": CHINESE_VOCAB},
                               vision_config={"image_size": 224, "patch_size": 16}, projection_dim=512)
    ChineseCLIPModel(config).save_pretrained(folder)
    BertTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                      sep_token="[SEP]", mask_token="[MASK]", model_max_length=52).save_pretrained(folder)
    ChineseCLIPImageProcessor(size={"height": 224, "width": 224}, do_center_crop=False).save_pretrained(folder)


def clip_b32(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    start, end = "<|startoftext|>", "<|endoftext|>"
    tokenizer = Tokenizer(models.BPE(unk_token=end))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    words = [f"word{n}" for n in range(5000)]
    tokenizer.train_from_iterator(words, trainers.BpeTrainer(vocab_size=49406, special_tokens=[start, end]))
    ids = {token: tokenizer.token_to_id(token) for token in (start, end)}
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{start} $A {end}",
                                                             special_tokens=list(ids.items()))
    CLIPModel(CLIPConfig(projection_dim=512)).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=start, eos_token=end, pad_token=end,
                            unk_token=end, model_max_length=77).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)


KINDS = {"chinese-clip-vit-base-patch16": chinese_clip, "clip-vit-base-patch32": clip_b32}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--kind", choices=sorted(KINDS), default="chinese-clip-vit-base-patch16")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    KINDS[args.kind](args.folder)
    print(f"wrote a random {args.kind} to {args.folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
