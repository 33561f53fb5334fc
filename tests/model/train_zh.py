"""Train the tiny Chinese-English CLIP of the test suite, as a Hugging Face transformers ChineseCLIPModel.

    python tests/model/train_zh.py            # CPU here; CUDA when present

Writes tests/model/clipsearch-test-zh/, a normal Hugging Face directory (config.json, model.safetensors
in float16, preprocessor_config.json, a WordPiece tokenizer trained here on the captions) that
AutoModel / AutoProcessor load offline, and prints the quality gate in Chinese, English and a mix.

How, in two stages, both from the committed open_clip test models (a ViT learns these scenes from nothing far
more slowly on a CPU than this takes):
1. The image tower. ChineseCLIPModel's vision tower has the architecture of the ViT test model
   (clipsearch-test-tiny-vit), so it starts from those weights, moved weight for weight (checked: same embeddings).
   That ViT alone is weak on these scenes (README), so it is then distilled from the ResNet test model
   (clipsearch-test-tiny, which passes the gate): trained to give the ResNet's image embedding of each scene.
2. The text tower, with the image tower locked (the first stage of Chinese-CLIP's own training). Only the BERT text
   tower and its projection learn, on the scenes with an English caption (scenes.py's) and a Chinese one
   (captions_zh.py) each: a CLIP loss ties both captions to their image, and both are drawn towards the ResNet
   model's own text embedding of the English caption.
Everything is seeded, so a rerun on the same device reproduces the same model.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import string
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from tokenizers import BertWordPieceTokenizer
from transformers import (
    BertTokenizerFast,
    ChineseCLIPConfig,
    ChineseCLIPImageProcessor,
    ChineseCLIPModel,
    ChineseCLIPProcessor,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from captions_zh import caption_zh, gate_captions_mixed, gate_captions_zh  # noqa: E402
from quality import measure  # noqa: E402
from quality_zh import hf_embedders, measure_languages, passes, projected, summary  # noqa: E402
from scenes import TRAINING_CLASSES, render, training_scene  # noqa: E402

OUT = HERE / "clipsearch-test-zh"
IMAGE_TOWER = "clipsearch-test-tiny-vit"  # the vision tower's starting weights
TEACHER = "clipsearch-test-tiny"  # whose image and text embeddings both towers learn to give
IMAGE_SIZE = 64
MAX_TOKENS = 32  # the longest caption is about 26 tokens with [CLS] and [SEP]
VOCAB_SIZE = 400
TEXT_WIDTH, TEXT_LAYERS = 128, 2
# As train.py: one item of each single-object class per batch keeps the captions in a batch
# distinct, which the loss's diagonal targets assume; two-object scenes are nearly always unique.
CLASSES = TRAINING_CLASSES
PAIRS_PER_BATCH = 32


@dataclass
class ScenePool:
    """Pre-rendered, preprocessed images (fp16) with an English and a Chinese caption each."""

    images: torch.Tensor
    english: list[str]
    chinese: list[str]


def image_processor() -> ChineseCLIPImageProcessor:
    # open_clip's preprocessing of the image tower: shortest side to 64 (bicubic), centre crop, CLIP's mean and std.
    return ChineseCLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                     crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def _render_chunk(args: tuple[int, int, bool]) -> tuple[np.ndarray, list[str], list[str]]:
    seed, count, pairs = args
    rng = random.Random(seed)
    # A separate stream for the Chinese wording, so the scenes are exactly train.py's for the same seed.
    zh_rng = random.Random(f"zh-{seed}")
    images, english, chinese = [], [], []
    for i in range(count):
        scene, width, height = training_scene(rng, i, pairs)
        images.append(render(scene, width, height))
        english.append(scene.caption)
        chinese.append(caption_zh(scene, zh_rng))
    pixels = image_processor()(images=images, return_tensors="pt")["pixel_values"]
    return pixels.half().numpy(), english, chinese


def build_pools(per_class: int, pairs: int, workers: int) -> tuple[ScenePool, ScenePool]:
    """(single-object scenes, item i of class i % len(CLASSES); two-object scenes)."""
    chunk = len(CLASSES) * 25
    single_jobs = [(1000 + i, chunk, False) for i in range(per_class // 25)]
    pair_jobs = [(5000 + i, 1000, True) for i in range(pairs // 1000)]
    with Pool(workers) as pool:
        chunks = [pool.map(_render_chunk, single_jobs), pool.map(_render_chunk, pair_jobs)]
    singles, pair_pool = (
        ScenePool(torch.from_numpy(np.concatenate([c[0] for c in part])),
                  [t for c in part for t in c[1]], [t for c in part for t in c[2]])
        for part in chunks
    )
    return singles, pair_pool


def train_tokenizer(corpus: list[str]) -> BertTokenizerFast:
    """A small WordPiece vocabulary for both languages: BERT's normaliser splits Chinese into characters
    and lowercases English, so the vocabulary is the captions' characters, words and word pieces."""
    wordpiece = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    # The gate's queries are in the corpus too, so no word the gate asks for is ever [UNK].
    extra = [*gate_captions_zh().values(), *gate_captions_mixed().values(), *gate_captions_zh()]
    # Every lowercase letter and digit is in the alphabet, so an English word the captions never use
    # still tokenizes into pieces rather than [UNK].
    wordpiece.train_from_iterator(sorted(set(corpus)) + extra, vocab_size=VOCAB_SIZE, min_frequency=1,
                                  show_progress=False,
                                  initial_alphabet=list(string.ascii_lowercase + string.digits),
                                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    with tempfile.TemporaryDirectory() as folder:
        wordpiece.save_model(folder)
        return BertTokenizerFast.from_pretrained(folder, model_max_length=MAX_TOKENS)


def load_open_clip(name: str) -> Any:
    open_clip.add_model_config(HERE / f"{name}.json")
    return open_clip.create_model(name, pretrained=str(HERE / f"{name}.pt")).float().eval()


def build_model(vocab_size: int, vit: Any) -> ChineseCLIPModel:
    visual = vit.visual
    width = visual.conv1.out_channels
    heads = visual.transformer.resblocks[0].attn.num_heads
    vision = {"image_size": IMAGE_SIZE, "patch_size": visual.conv1.kernel_size[0], "hidden_size": width,
              "intermediate_size": visual.transformer.resblocks[0].mlp.c_fc.out_features,
              "num_hidden_layers": len(visual.transformer.resblocks), "num_attention_heads": heads,
              "hidden_act": "gelu", "projection_dim": visual.proj.shape[1]}  # open_clip's ViT uses exact GELU
    # No dropout: the captions are a closed language, and dropout only slows a model this small down.
    text = {"vocab_size": vocab_size, "hidden_size": TEXT_WIDTH, "intermediate_size": 4 * TEXT_WIDTH,
            "num_hidden_layers": TEXT_LAYERS, "num_attention_heads": TEXT_WIDTH // 32,
            "max_position_embeddings": MAX_TOKENS, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    config = ChineseCLIPConfig(text_config=text, vision_config=vision, projection_dim=visual.proj.shape[1],
                               logit_scale_init_value=vit.logit_scale.item())
    model = ChineseCLIPModel(config)
    model.load_state_dict(_vision_state(visual), strict=False)
    return model


def _vision_state(visual: Any) -> dict[str, torch.Tensor]:
    """open_clip's VisionTransformer weights under ChineseCLIPModel's names (attention's packed q, k, v split)."""
    source = visual.state_dict()
    state = {
        "vision_model.embeddings.class_embedding": source["class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": source["conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": source["positional_embedding"],
        "vision_model.post_layernorm.weight": source["ln_post.weight"],
        "vision_model.post_layernorm.bias": source["ln_post.bias"],
        "visual_projection.weight": source["proj"].T,
    }
    for part in ("weight", "bias"):
        state[f"vision_model.pre_layrnorm.{part}"] = source[f"ln_pre.{part}"]
    for index in range(len(visual.transformer.resblocks)):
        block, layer = f"transformer.resblocks.{index}", f"vision_model.encoder.layers.{index}"
        for part in ("weight", "bias"):
            q, k, v = source[f"{block}.attn.in_proj_{part}"].chunk(3)
            state |= {f"{layer}.self_attn.q_proj.{part}": q, f"{layer}.self_attn.k_proj.{part}": k,
                      f"{layer}.self_attn.v_proj.{part}": v,
                      f"{layer}.self_attn.out_proj.{part}": source[f"{block}.attn.out_proj.{part}"],
                      f"{layer}.layer_norm1.{part}": source[f"{block}.ln_1.{part}"],
                      f"{layer}.layer_norm2.{part}": source[f"{block}.ln_2.{part}"],
                      f"{layer}.mlp.fc1.{part}": source[f"{block}.mlp.c_fc.{part}"],
                      f"{layer}.mlp.fc2.{part}": source[f"{block}.mlp.c_proj.{part}"]}
    return state


def _normalized(features: Any) -> torch.Tensor:
    return torch.nn.functional.normalize(projected(features).float(), dim=-1)


def check_moved_tower(model: ChineseCLIPModel, vit: Any, pool: ScenePool) -> None:
    """The moved vision tower gives the ViT test model's embeddings."""
    sample = pool.images[:200].float()
    with torch.inference_mode():
        ours = _normalized(model.get_image_features(pixel_values=sample))
        reference = torch.nn.functional.normalize(vit.encode_image(sample).float(), dim=-1)
    agreement = float((ours * reference).sum(-1).min())
    assert agreement >= 0.9999, f"the moved image tower differs from {IMAGE_TOWER}: min cosine {agreement:.6f}"
    print(f"image tower: {IMAGE_TOWER}'s weights, min cosine to it {agreement:.6f}", flush=True)


def teacher_images(teacher: Any, pools: tuple[ScenePool, ScenePool]) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        return tuple(torch.nn.functional.normalize(
            torch.cat([teacher.encode_image(chunk.float()) for chunk in pool.images.split(500)]).float(), dim=-1)
            for pool in pools)


def student_images(model: ChineseCLIPModel, pools: tuple[ScenePool, ScenePool],
                   device: str) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        return tuple(torch.cat([_normalized(model.get_image_features(pixel_values=chunk.float().to(device))).cpu()
                                for chunk in pool.images.split(500)]) for pool in pools)


def text_targets(teacher: Any, pools: tuple[ScenePool, ScenePool]) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's own embedding of each English caption: where both languages' captions should land."""
    tokenizer = open_clip.get_tokenizer(TEACHER)
    with torch.inference_mode():
        return tuple(torch.cat([torch.nn.functional.normalize(teacher.encode_text(tokenizer(chunk)).float(), dim=-1)
                                for chunk in _chunks(pool.english, 1000)]) for pool in pools)


def distill_image_tower(model: ChineseCLIPModel, teacher: Any, pools: tuple[ScenePool, ScenePool],
                        args: argparse.Namespace) -> None:
    """Stage 1: the vision tower learns to give the teacher's image embedding of every pooled scene."""
    images = torch.cat([pool.images for pool in pools])
    targets = torch.cat(teacher_images(teacher, pools))
    generator = torch.Generator().manual_seed(1)

    def cosine_distance() -> torch.Tensor:
        picks = torch.randint(0, len(images), (args.image_batch,), generator=generator)
        embedded = _normalized(model.get_image_features(pixel_values=images[picks].float().to(args.device)))
        return (1 - (embedded * targets[picks].to(args.device)).sum(-1)).mean()

    _optimise(model, Stage("image", ("vision_model.", "visual_projection."), args.image_lr, 0.01, args.image_steps),
              cosine_distance, lambda: f"with {TEACHER}'s text tower: {image_gate(model, teacher, args.device)}", args)


@dataclass(frozen=True)
class Stage:
    name: str
    trained: tuple[str, ...]  # the prefixes of the parameters it trains; the others stay as they are
    lr: float
    weight_decay: float
    steps: int


def _optimise(model: ChineseCLIPModel, stage: Stage, loss_of_a_batch: Callable[[], torch.Tensor],
              evaluate: Callable[[], str], args: argparse.Namespace) -> None:
    """AdamW over the stage's parameters, with progress every 100 steps and `evaluate` every --eval-every."""
    optimiser = torch.optim.AdamW(_only(model, stage.trained), lr=stage.lr, betas=(0.9, 0.98), eps=1e-6,
                                  weight_decay=stage.weight_decay)
    model.to(args.device).train()
    started = time.time()
    for step in range(stage.steps):
        lr = _set_lr(optimiser, stage.lr, step, stage.steps)
        loss = loss_of_a_batch()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % 100 == 0 or step == stage.steps - 1:
            print(f"{stage.name} step {step:5d} loss {loss.item():.4f} lr {lr:.2e} "
                  f"{(step + 1) / (time.time() - started):.1f} steps/s", flush=True)
        if step and step % args.eval_every == 0:
            print(f"  {stage.name} tower at step {step}, {evaluate()}", flush=True)
    print(f"{stage.name} tower trained in {time.time() - started:.0f}s on {args.device}, {evaluate()}", flush=True)


def image_gate(model: ChineseCLIPModel, teacher: Any, device: str) -> str:
    """The English gate of the vision tower alone, asked through the teacher's text tower."""
    tokenizer, processor = open_clip.get_tokenizer(TEACHER), image_processor()
    was_training = model.training
    model.eval()

    def embed_images(images: Any) -> np.ndarray:
        pixels = processor(images=list(images), return_tensors="pt")["pixel_values"].to(device)
        with torch.inference_mode():
            return _normalized(model.get_image_features(pixel_values=pixels)).cpu().numpy()

    def embed_texts(texts: Any) -> np.ndarray:
        with torch.inference_mode():
            return torch.nn.functional.normalize(teacher.encode_text(tokenizer(list(texts))).float(), dim=-1).numpy()

    report = measure(embed_images, embed_texts)
    model.train(was_training)
    return report.summary()


def _only(model: torch.nn.Module, prefixes: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """The parameters under `prefixes`, the only ones left trainable."""
    trained = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(prefixes))
        if parameter.requires_grad:
            trained.append(parameter)
    return trained


def _set_lr(optimiser: torch.optim.Optimizer, peak: float, step: int, steps: int) -> float:
    """Linear warmup over the first 5% of the steps, then cosine decay to zero."""
    warmup = max(1, steps // 20)
    progress = (step - warmup) / max(1, steps - warmup)
    lr = peak * (step + 1) / warmup if step < warmup else 0.5 * peak * (1 + math.cos(math.pi * progress))
    for group in optimiser.param_groups:
        group["lr"] = lr
    return lr


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def tokenize(tokenizer: BertTokenizerFast, pool: ScenePool) -> dict[str, torch.Tensor]:
    """Each of the tokenizer's outputs as (language, item, token): language 0 is English, 1 Chinese."""
    encoded = [tokenizer(captions, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
               for captions in (pool.english, pool.chinese)]
    return {key: torch.stack([e[key] for e in encoded]) for key in encoded[0]}


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over scaled cosine similarities; item i of each side matches item i."""
    logits = logit_scale.exp() * image @ text.T
    targets = torch.arange(len(logits), device=logits.device)
    cross_entropy = torch.nn.functional.cross_entropy
    return (cross_entropy(logits, targets) + cross_entropy(logits.T, targets)) / 2


@dataclass
class TrainingData:
    tokens: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]  # single-object and two-object captions
    images: tuple[torch.Tensor, torch.Tensor]  # the locked image tower's embeddings of their images
    texts: tuple[torch.Tensor, torch.Tensor]  # the teacher's embeddings of their English captions


def draw(data: TrainingData, generator: torch.Generator, device: str) -> tuple[dict[str, torch.Tensor], ...]:
    """A batch of one single-object scene per class and PAIRS_PER_BATCH two-object scenes, as (captions in both
    languages as (2, batch, token) tensors, {"images": image embeddings, "texts": English text targets})."""
    per_class = len(data.images[0]) // len(CLASSES)
    picks = torch.arange(len(CLASSES)) + len(CLASSES) * torch.randint(0, per_class, (len(CLASSES),),
                                                                      generator=generator)
    indices = (picks, torch.randint(0, len(data.images[1]), (PAIRS_PER_BATCH,), generator=generator))
    tokens = {key: torch.cat([t[key][:, i] for t, i in zip(data.tokens, indices)], dim=1).to(device)
              for key in data.tokens[0]}
    targets = {name: torch.cat([part[i] for part, i in zip(getattr(data, name), indices)]).to(device)
               for name in ("images", "texts")}
    return tokens, targets


def step_loss(model: ChineseCLIPModel, tokens: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
              distill: float) -> torch.Tensor:
    length = int(tokens["attention_mask"].sum(-1).max())  # no padding beyond the batch's longest caption
    flat = {key: value[..., :length].flatten(0, 1) for key, value in tokens.items()}
    english, chinese = _normalized(model.get_text_features(**flat)).chunk(2)
    images, texts = targets["images"], targets["texts"]
    contrastive = (clip_loss(images, english, model.logit_scale) + clip_loss(images, chinese, model.logit_scale)) / 2
    distance = (2 - (english * texts).sum(-1) - (chinese * texts).sum(-1)).mean() / 2
    return contrastive + distill * distance


def train_text_tower(model: ChineseCLIPModel, processor: ChineseCLIPProcessor, data: TrainingData,
                     args: argparse.Namespace) -> None:
    """Stage 2: the text tower learns both languages against the locked image tower."""
    generator = torch.Generator().manual_seed(0)
    _optimise(model, Stage("text", ("text_model.", "text_projection."), args.lr, 0.05, args.steps),
              lambda: step_loss(model, *draw(data, generator, args.device), args.distill),
              lambda: f"gate {gate(model, processor, args.device)}", args)


def gate(model: ChineseCLIPModel, processor: ChineseCLIPProcessor, device: str) -> str:
    was_training = model.training
    model.eval()
    reports = measure_languages(*hf_embedders(model, processor, device))
    model.train(was_training)
    return f"{'passes' if passes(reports) else 'FAILS'}\n{summary(reports)}"


def save(model: ChineseCLIPModel, processor: ChineseCLIPProcessor, out: Path) -> None:
    """Write the model (float16) and its processor as one Hugging Face folder, replacing any old one whole."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.to("cpu", torch.float16).save_pretrained(staging)
    processor.save_pretrained(staging)
    _write_compatibility_files(processor, staging)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def _write_compatibility_files(processor: ChineseCLIPProcessor, folder: Path) -> None:
    """transformers 5 saves the image settings in processor_config.json and the vocabulary only in
    tokenizer.json; transformers 4 reads preprocessor_config.json, and vocab.txt with special_tokens_map.json
    is what any BERT tokenizer, slow ones included, loads. Both sets describe the same processor."""
    processor.image_processor.save_pretrained(folder)  # preprocessor_config.json
    vocab = processor.tokenizer.get_vocab()
    (folder / "vocab.txt").write_text("".join(f"{token}\n" for token in sorted(vocab, key=vocab.get)), encoding="utf-8")
    special = json.dumps(processor.tokenizer.special_tokens_map, indent=2, ensure_ascii=False)
    (folder / "special_tokens_map.json").write_text(special + "\n", encoding="utf-8")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-steps", type=int, default=3000, help="stage 1: distilling the image tower")
    parser.add_argument("--image-batch", type=int, default=96)
    parser.add_argument("--image-lr", type=float, default=5e-4)
    parser.add_argument("--steps", type=int, default=1500, help="stage 2: the text tower")
    parser.add_argument("--per-class", type=int, default=400, help="pre-rendered images per single-object class")
    parser.add_argument("--pairs", type=int, default=12000, help="pre-rendered two-object images")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--distill", type=float, default=1.0,
                        help=f"weight of matching {TEACHER}'s text embedding of the English caption")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--eval-every", type=int, default=500, help="print the quality gate every N steps")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    random.seed(0)
    started = time.time()
    pools = build_pools(args.per_class, args.pairs, args.workers)
    print(f"rendered {len(pools[0].images)} + {len(pools[1].images)} scenes in {time.time() - started:.0f}s",
          flush=True)
    tokenizer = train_tokenizer([c for pool in pools for c in (*pool.english, *pool.chinese)])
    processor = ChineseCLIPProcessor(image_processor=image_processor(), tokenizer=tokenizer)
    vit, teacher = load_open_clip(IMAGE_TOWER), load_open_clip(TEACHER)
    model = build_model(len(tokenizer), vit).eval()
    print(f"vocabulary {len(tokenizer)} tokens; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters",
          flush=True)
    check_moved_tower(model, vit, pools[0])
    distill_image_tower(model, teacher, pools, args)
    model.eval()
    data = TrainingData((tokenize(tokenizer, pools[0]), tokenize(tokenizer, pools[1])),
                        student_images(model, pools, args.device), text_targets(teacher, pools))
    train_text_tower(model, processor, data, args)
    save(model, processor, args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)", flush=True)
    # The gate of what was written: the float16 folder, loaded back the way the tests load it.
    reloaded = ChineseCLIPModel.from_pretrained(args.out).float().eval()
    print(f"gate of the saved model: {gate(reloaded, ChineseCLIPProcessor.from_pretrained(args.out), 'cpu')}")


if __name__ == "__main__":
    main()
