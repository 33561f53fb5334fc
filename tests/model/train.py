"""Train the tiny CLIP that the test suite uses, with open_clip's own model code and loss.

    python tests/model/train.py                                    # CPU here; CUDA when present
    python tests/model/train.py --model clipsearch-test-tiny-vit   # the ViT variant

Writes tests/model/NAME.pt (fp16 state dict) beside the architecture config NAME.json, and
prints the quality gate's figures at the end. clipsearch-test-tiny (a ResNet image tower) is
the suite's main model; clipsearch-test-tiny-vit has a ViT image tower, which int8 quantisation
and the numpy query model apply to. Both take 64-pixel inputs, so they share rendered scenes.
Everything is seeded, so a rerun on the same device reproduces the same model.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import open_clip
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import measure  # noqa: E402
from scenes import TRAINING_CLASSES, render, training_scene  # noqa: E402

MODEL_NAME = "clipsearch-test-tiny"
# One item of each single-object class per batch keeps captions in a batch distinct,
# which is what ClipLoss's diagonal targets assume.
CLASSES = TRAINING_CLASSES
PAIRS_PER_BATCH = 32


def _render_chunk(args: tuple[int, int, bool]) -> tuple[np.ndarray, list[str]]:
    seed, count, pairs = args
    rng = random.Random(seed)
    open_clip.add_model_config(HERE / f"{MODEL_NAME}.json")  # every test model's preprocessing is this one's
    _, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME)
    images, captions = [], []
    for i in range(count):
        scene, width, height = training_scene(rng, i, pairs)
        images.append(preprocess(render(scene, width, height)).half().numpy())
        captions.append(scene.caption)
    return np.stack(images), captions


def build_pool(per_class: int, pairs: int, workers: int) -> tuple[torch.Tensor, list[str], torch.Tensor, list[str]]:
    chunk = len(CLASSES) * 25
    single_jobs = [(1000 + i, chunk, False) for i in range(per_class // 25)]
    pair_jobs = [(5000 + i, 1000, True) for i in range(pairs // 1000)]
    with Pool(workers) as pool:
        singles = pool.map(_render_chunk, single_jobs)
        pair_chunks = pool.map(_render_chunk, pair_jobs)
    single_images = torch.from_numpy(np.concatenate([s[0] for s in singles]))
    single_captions = [c for s in singles for c in s[1]]
    pair_images = torch.from_numpy(np.concatenate([p[0] for p in pair_chunks]))
    pair_captions = [c for p in pair_chunks for c in p[1]]
    return single_images, single_captions, pair_images, pair_captions


def embedders(model: torch.nn.Module, tokenizer, preprocess, device: str):
    def embed_images(images):
        with torch.inference_mode():
            batch = torch.stack([preprocess(im) for im in images]).to(device)
            return torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1).cpu().numpy()

    def embed_texts(texts):
        with torch.inference_mode():
            features = model.encode_text(tokenizer(texts).to(device)).float()
            return torch.nn.functional.normalize(features, dim=-1).cpu().numpy()

    return embed_images, embed_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=MODEL_NAME, help=f"a config in tests/model/ (default {MODEL_NAME})")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--per-class", type=int, default=500, help="pre-rendered images per single-object class")
    parser.add_argument("--pairs", type=int, default=20000, help="pre-rendered two-object images")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="default: tests/model/MODEL.pt")
    parser.add_argument("--eval-every", type=int, default=500, help="print the quality gate every N steps")
    args = parser.parse_args()
    out = args.out or HERE / f"{args.model}.pt"

    torch.manual_seed(0)
    random.seed(0)
    open_clip.add_model_config(HERE / f"{args.model}.json")
    started = time.time()
    singles, single_captions, pairs, pair_captions = build_pool(args.per_class, args.pairs, args.workers)
    print(f"rendered {len(singles)} + {len(pairs)} scenes in {time.time() - started:.0f}s", flush=True)

    model, _, preprocess = open_clip.create_model_and_transforms(args.model)
    tokenizer = open_clip.get_tokenizer(args.model)
    model.to(args.device).train()
    single_tokens = tokenizer(single_captions)
    pair_tokens = tokenizer(pair_captions)
    loss_fn = open_clip.ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return 0.5 * args.lr * (1 + math.cos(math.pi * (step - warmup) / (args.steps - warmup)))

    generator = torch.Generator().manual_seed(0)
    per_class = len(singles) // len(CLASSES)
    class_offsets = torch.arange(len(CLASSES))
    started = time.time()
    for step in range(args.steps):
        # Item i of the pool belongs to class i % len(CLASSES): one random draw per class.
        picks = class_offsets + len(CLASSES) * torch.randint(0, per_class, (len(CLASSES),), generator=generator)
        pair_picks = torch.randint(0, len(pairs), (PAIRS_PER_BATCH,), generator=generator)
        images = torch.cat([singles[picks], pairs[pair_picks]]).float().to(args.device)
        texts = torch.cat([single_tokens[picks], pair_tokens[pair_picks]]).to(args.device)
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step)
        image_features, text_features, logit_scale = model(images, texts)[:3]
        loss = loss_fn(image_features, text_features, logit_scale)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d} loss {loss.item():.3f} lr {lr_at(step):.2e} "
                  f"{(step + 1) / (time.time() - started):.1f} steps/s", flush=True)
        if step and step % args.eval_every == 0:
            model.eval()
            print(f"  gate at step {step}: {measure(*embedders(model, tokenizer, preprocess, args.device)).summary()}",
                  flush=True)
            model.train()

    model.eval()
    report = measure(*embedders(model, tokenizer, preprocess, args.device))
    print(f"trained {args.steps} steps in {time.time() - started:.0f}s on {args.device}: {report.summary()}",
          flush=True)
    state = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()}
    torch.save(state, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
