"""Measure, on this machine and with random weights, the open_clip models a user might pick as the default.

    python bench/model_speed.py                                    # the candidates below, batch 32
    python bench/model_speed.py --models ViT-B-32,MobileCLIP2-S0 --seconds 5
    python bench/model_speed.py --seconds 0 --min-batches 5 --patience 900   # a shared machine: wait for quiet
    python bench/model_speed.py --json > speed.json                # every figure as JSON on stdout, no table
    python bench/model_speed.py --json speed.json                  # the table, and the JSON in a file

Speed depends on the architecture, not on the weights, so nothing is downloaded: each model is built with
open_clip's random initialisation, saved to a temporary checkpoint, and loaded from it by clipsearch's own
Encoder, exactly as `clipsearch index --model NAME --pretrained FILE` would. All models are loaded in this one
process and timed in interleaved rounds (one batch of each configuration in turn, `--min-batches` rounds or more),
so that load from other work on the machine falls on every configuration alike. For each model it measures:

  image      images/s of Encoder.embed_pixels on one ready uint8 batch of random pixels at the model's own input
             size (uint8 -> normalise -> encode_image -> L2 norm, as each indexing batch does; decoding is left
             out), after warm-up: the median over the timed batches, counting only the quiet ones (during
             which other processes kept less than 0.15 of a core busy, read from /proc/stat) when there are
             any, and with --patience, adding rounds until there are enough; the median over all batches is
             reported too. At --precision fp32, and at auto (on a CPU: int8 image-tower MLPs, when the tower
             has any).
  reparam    for towers with reparameterisable blocks (MobileCLIP's FastViT / MobileOne), fp32 is timed both
             ways: as published (Encoder(reparameterize=False)) and with the blocks folded for inference, as
             clipsearch loads them (clipsearch.models.openclip.reparameterize_for_inference). Each embedding is compared
             with the unfolded fp32 one.
  openvino   where OpenVINO is installed, the image tower converted as `clipsearch index` converts it
             (clipsearch.models.openvino) and compiled at fp32, bf16 and int8 (int8 only where the CPU has
             VNNI, as in clipsearch), timed in the same rounds; the table "engine | images/s | x torch fp32 | min
             cosine to torch fp32" puts every engine and precision side by side.
  text       milliseconds for one short query, through Encoder.embed_texts (torch; the text tower is never
             quantised or reparameterised) and through clipsearch's numpy copy of the model, which `clipsearch
             query` runs instead of torch once it has been exported. Timed in
             bursts of 5 queries, interleaved across models; the median over the quiet bursts, as for images.
  size       parameters of the image and text towers, input size, the fp32 checkpoint's size (published open_clip
             weights are fp32 too, so the download is about this size), and the model load time.

Before saving, BatchNorm statistics and layer-scale factors are drawn at random rather than left at their identity
initialisation (mean 0, variance 1, scale 1e-5), so that the reparameterisation check has something to fold; this
does not change the amount of work. Embedding differences are reported as the smallest cosine and as the largest
distance relative to how far the batch's embeddings lie from their mean: random-weight models map every input to
nearly the same direction, so a cosine near 1 alone would prove little.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if (REPO / "clipsearch" / "__init__.py").is_file():
    sys.path.insert(0, str(REPO))  # measure this checkout, even where another clipsearch is installed

import numpy as np  # noqa: E402
from index_throughput import cpu_name  # noqa: E402  (this folder is on sys.path: the script's own)

from clipsearch.errors import UsageError  # noqa: E402
from clipsearch.models.hub import quiet_root_logger  # noqa: E402
from clipsearch.models.identity import ModelSpec, default_pretrained, identify  # noqa: E402
from clipsearch.models.openclip import OpenClipEncoder as Encoder  # noqa: E402
from clipsearch.models.openclip import has_reparameterizable_blocks  # noqa: E402
from clipsearch.models.query_model import QueryModel, read_manifest  # noqa: E402

# MobileCLIP2-S2 is left out: its config is MobileCLIP-S2's (fastvit_mci2 at 256 px, the same text tower), so its
# speed is too; name it with --models to see.
CANDIDATES = ("ViT-B-32", "ViT-B-32-256", "MobileCLIP2-S0", "MobileCLIP-S2", "ViT-B-16")
QUERY = "a red bicycle leaning against a brick wall"
TEXT_BURST, TEXT_ROUNDS = 5, 8  # text queries are timed in bursts of 5, at least 8 bursts per model
QUIET_CORES = 0.15  # a batch during which other processes kept fewer cores than this busy counts as quiet


# ---------------------------------------------------------------------------------------------------------------
# Building and loading.


def _count(module: Any) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def _settle(model: Any, seed: int) -> None:
    """Trained-looking BatchNorm statistics and layer scales instead of identity ones (see the module docstring)."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def uniform(tensor: Any, low: float, high: float) -> None:
        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.2)
                uniform(module.running_var, 0.5, 2.0)
                if module.affine:
                    uniform(module.weight, 0.5, 1.5)
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
        for name, parameter in model.named_parameters():
            if ".layer_scale" in name and name.endswith(".gamma"):
                uniform(parameter, 0.05, 0.2)


def _compare(reference: np.ndarray, other: np.ndarray) -> dict:
    """How far `other`'s embeddings are from `reference`'s, in absolute terms and against the batch's spread."""
    cosine = np.sum(reference * other, axis=1)
    distance = np.linalg.norm(reference - other, axis=1)
    spread = float(np.median(np.linalg.norm(reference - reference.mean(axis=0), axis=1)))
    return {"min_cosine": float(cosine.min()), "max_distance": float(distance.max()), "batch_spread": spread,
            "max_distance_over_spread": float(distance.max()) / spread if spread > 0 else None}


def _load(identity: Any, precision: str, reparameterise: bool) -> tuple[Encoder, float]:
    began = time.perf_counter()
    with quiet_root_logger():
        encoder = Encoder(identity, "cpu", reparameterize=reparameterise)
        encoder.use_precision(precision)
    return encoder, time.perf_counter() - began


@dataclass
class Timed:
    """One configuration to time: a loaded Encoder and its batch."""

    model: str
    label: str
    encoder: Encoder
    pixels: np.ndarray
    seconds: list[float] = field(default_factory=list)
    others: list[float | None] = field(default_factory=list)  # cores other processes used during each batch


def _prepare(name: str, spec: dict, work: Path, log: Callable[[str], None],
             query_models: dict[str, Any]) -> tuple[dict, list[Timed], Encoder]:
    """Build `name` with random weights, load it every way it is measured, and check the variants' embeddings.

    Returns the model's figures so far, the configurations to time, and its fp32 Encoder (for the text query);
    puts its numpy query model, if clipsearch can make one, in `query_models`.
    """
    import open_clip
    import torch

    result: dict[str, Any] = {"model": name}
    tags = open_clip.list_pretrained_tags_by_model(name)
    result["open_clip_tags"] = tags
    result["clipsearch_pretrained"] = default_pretrained(name) if tags else None
    if result["clipsearch_pretrained"]:
        result["hf_hub"] = open_clip.get_pretrained_cfg(name, result["clipsearch_pretrained"]).get("hf_hub")

    log(f"{name}: building it with random weights")
    torch.manual_seed(0)
    with quiet_root_logger():
        network = open_clip.create_model(name, pretrained=None)
    _settle(network, seed=0)
    visual, total = _count(network.visual), _count(network)
    result["params"] = {"image": visual, "text": total - visual, "total": total}  # "text": the rest, logit scale too
    reparameterisable = has_reparameterizable_blocks(network.visual)
    result["reparameterisable"] = reparameterisable
    checkpoint = work / f"{name}-random-weights.pt"
    torch.save(network.state_dict(), checkpoint)
    result["checkpoint_bytes"] = checkpoint.stat().st_size
    del network
    gc.collect()
    identity = identify(ModelSpec(name, str(checkpoint)))

    configs: list[Timed] = []
    runs: dict[str, dict] = {}
    reference: np.ndarray | None = None
    pixels: np.ndarray | None = None
    fp32_encoder: Encoder | None = None
    for precision in ("fp32", "auto"):
        for reparameterise in (False, True) if reparameterisable else (False,):
            label = precision + ("+reparam" if reparameterise else "")
            log(f"{name}: loading it as {label}")
            encoder, load_s = _load(identity, precision, reparameterise)
            run: dict[str, Any] = {"precision": encoder.precision, "load_s": load_s,
                                   "image_params": _count(encoder._model.visual)}
            runs[label] = run
            if pixels is None:
                size = encoder.preprocessing.image_size
                result["image_size"] = size
                pixels = np.random.default_rng(0).integers(0, 256, (spec["batch_size"], size, size, 3),
                                                           dtype=np.uint8)
            if precision == "auto" and encoder.precision == "fp32":
                run["same_as"] = "fp32" + ("+reparam" if reparameterise else "")  # nothing quantised: not re-timed
                continue
            embeddings = encoder.embed_pixels(pixels)
            if reference is None:
                reference = embeddings
                fp32_encoder = encoder
                log(f"{name}: exporting clipsearch's numpy query model")
                result["query_model"], query_models[name] = _query_model(encoder, identity, work / f"{name}-query")
            else:
                run["vs_fp32"] = _compare(reference, embeddings)
            configs.append(Timed(name, label, encoder, pixels))
    checkpoint.unlink()  # loaded: the Encoders hold the weights
    assert fp32_encoder is not None and reference is not None and pixels is not None
    configs += _openvino_configs(name, fp32_encoder, pixels, reference, runs, work, log)
    result["runs"] = runs
    return result, configs, fp32_encoder


def _openvino_configs(name: str, fp32_encoder: Encoder, pixels: np.ndarray, reference: np.ndarray,
                      runs: dict[str, dict], work: Path, log: Callable[[str], None]) -> list[Timed]:
    """The image tower converted as `clipsearch index` converts it, compiled at every precision this CPU takes."""
    from clipsearch.models import openvino as engine

    if engine.openvino_version() is None:
        return []
    folder = work / f"{name}-openvino"
    log(f"{name}: converting the image tower to OpenVINO {engine.openvino_version()}")
    began = time.perf_counter()
    engine.convert(fp32_encoder, folder, np.concatenate([pixels[:4], engine.synthetic_probes(pixels.shape[1])]))
    converted_s = time.perf_counter() - began
    configs = []
    for precision in ("fp32", "bf16", "int8"):
        if precision == "int8" and not (folder / engine.INT8_XML).is_file():
            continue  # made only where the CPU has VNNI
        label = f"openvino {precision}"
        began = time.perf_counter()
        try:
            tower = engine.OpenVinoTower(engine._compile(folder, precision, None), fp32_encoder.preprocessing,
                                         precision)
        except Exception as error:  # a precision this CPU cannot run
            log(f"{name}: {label}: {error}")
            continue
        runs[label] = {"precision": precision, "load_s": time.perf_counter() - began, "convert_s": converted_s,
                       "image_params": runs["fp32"]["image_params"],
                       "vs_fp32": _compare(reference, tower.embed_pixels(pixels))}
        configs.append(Timed(name, label, tower, pixels))
    return configs


def _query_model(encoder: Encoder, identity: Any, folder: Path) -> tuple[dict, Any]:
    """clipsearch's numpy copy of the model, which `clipsearch query` runs instead of torch when there is one."""
    report = encoder.export_query_model(folder)
    info = {"text": report.text, "image": report.image, "reason": report.reason, "bytes": report.size_bytes}
    manifest = read_manifest(folder, identity) if report.text else None
    return info, None if manifest is None else QueryModel(folder, manifest)


# ---------------------------------------------------------------------------------------------------------------
# Timing, interleaved.


def _time_texts(embedders: dict[str, Callable[[list[str]], Any]], what: str, spec: dict,
                log: Callable[[str], None]) -> dict[str, dict]:
    """ms per short query for each model: bursts of TEXT_BURST queries, interleaved, quiet bursts preferred."""
    log(f"text query ({what}) on {len(embedders)} models, interleaved")
    for embed in embedders.values():
        for _ in range(3):
            embed([QUERY])
    bursts: dict[str, list[tuple[float, float | None]]] = {name: [] for name in embedders}
    began = time.perf_counter()

    def more() -> bool:
        if len(next(iter(bursts.values()))) < TEXT_ROUNDS:
            return True
        short = any(sum(_is_quiet(others) for _, others in values) < TEXT_ROUNDS // 2 for values in bursts.values())
        return short and time.perf_counter() - began < spec["patience"] / 4

    while more():
        for name, embed in embedders.items():
            wall, others = _timed(lambda embed=embed: [embed([QUERY]) for _ in range(TEXT_BURST)])
            bursts[name].append((wall * 1000 / TEXT_BURST, others))
    figures = {}
    for name, values in bursts.items():
        every = [ms for ms, _ in values]
        quiet = [ms for ms, others in values if _is_quiet(others)]
        figures[name] = {"ms": statistics.median(quiet or every), "quiet_bursts": len(quiet), "bursts": len(values),
                         "queries_per_burst": TEXT_BURST, "ms_all_bursts": statistics.median(every),
                         "min": min(every), "max": max(every)}
    return figures


def _timed(call: Callable[[], object]) -> tuple[float, float | None]:
    """Wall seconds of call(), and how many cores other processes kept busy meanwhile (None if unknown)."""
    busy, own, start = _busy_seconds(), time.process_time(), time.perf_counter()
    call()
    wall = time.perf_counter() - start
    busy_after = _busy_seconds()
    if busy is None or busy_after is None:
        return wall, None
    return wall, max(0.0, (busy_after - busy) - (time.process_time() - own)) / wall


def _busy_seconds() -> float | None:
    """CPU seconds spent so far by every process on the machine (Linux /proc/stat, steal included), else None."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _time_images(configs: list[Timed], spec: dict, log: Callable[[str], None]) -> None:
    """One batch of each configuration in turn, until each has `min_batches` and the rounds took `seconds` apiece.

    Each batch also records how many cores other processes kept busy meanwhile, so that batches slowed by other
    work on the machine can be set aside.
    """
    log(f"warm-up: {spec['warmup']} batches of each of {len(configs)} configurations")
    for config in configs:
        for _ in range(spec["warmup"]):  # oneDNN primitive creation, allocator growth
            config.encoder.embed_pixels(config.pixels)
    began = time.perf_counter()
    rounds = 0

    def more() -> bool:
        elapsed = time.perf_counter() - began
        if rounds < spec["min_batches"] or elapsed < spec["seconds"] * len(configs):
            return True
        short = any(sum(map(_is_quiet, config.others)) < spec["min_batches"] for config in configs)
        return short and elapsed < spec["seconds"] * len(configs) + spec["patience"]

    while more():
        rounds += 1
        for config in configs:
            wall, others = _timed(lambda config=config: config.encoder.embed_pixels(config.pixels))
            config.seconds.append(wall)
            config.others.append(others)
        quiet = sum(_is_quiet(config.others[-1]) for config in configs)
        log(f"round {rounds} done, {time.perf_counter() - began:.0f} s ({quiet} of {len(configs)} batches quiet)")


def _is_quiet(others: float | None) -> bool:
    return others is not None and others < QUIET_CORES


def _measure(models: list[str], spec: dict) -> tuple[list[dict], int]:
    log = lambda text: print(f"  {text}", file=sys.stderr, flush=True)  # noqa: E731
    began = time.perf_counter()
    with quiet_root_logger():
        import torch
    log(f"imported torch and open_clip in {time.perf_counter() - began:.1f} s")

    work = Path(tempfile.mkdtemp(prefix="clipsearch-model-speed-"))
    results: list[dict] = []
    configs: list[Timed] = []
    fp32_encoders: dict[str, Encoder] = {}
    query_models: dict[str, Any] = {}
    try:
        for name in models:
            result, timed, fp32_encoder = _prepare(name, spec, work, log, query_models)
            results.append(result)
            configs += timed
            fp32_encoders[name] = fp32_encoder
        texts = _time_texts({name: encoder.embed_texts for name, encoder in fp32_encoders.items()}, "torch", spec,
                            log)
        numpy_texts = _time_texts({name: model.embed_texts for name, model in query_models.items() if model},
                                  "numpy query model", spec, log)
        _time_images(configs, spec, log)
    finally:
        query_models.clear()
        shutil.rmtree(work, ignore_errors=True)
    for result in results:
        result["text"] = texts[result["model"]]
        result["text_numpy"] = numpy_texts.get(result["model"])
    by_model = {result["model"]: result for result in results}
    for config in configs:
        rates = [len(config.pixels) / seconds for seconds in config.seconds]
        quiet = [rate for rate, others in zip(rates, config.others) if _is_quiet(others)]
        by_model[config.model]["runs"][config.label].update(
            images_per_s=statistics.median(quiet or rates), quiet_batches=len(quiet),
            images_per_s_all_batches=statistics.median(rates), min=min(rates), max=max(rates), batches=len(rates),
            batch_size=len(config.pixels), batch_seconds=[round(seconds, 4) for seconds in config.seconds],
            others_cores=[None if others is None else round(others, 3) for others in config.others])
    return results, torch.get_num_threads()


def _machine() -> str:
    from clipsearch.models.openvino import cpu_flags

    shown = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return f"{cpu_name()}, {os.cpu_count()} cores [{' '.join(f for f in shown if f in cpu_flags()) or 'flags unknown'}]"


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("torch", "open_clip_torch", "timm", "openvino"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _rate(run: dict | None) -> str:
    if run is None:
        return "-"
    if "same_as" in run:
        return f"= {run['same_as']}"
    return f"{run['images_per_s']:.1f}" + ("" if run["quiet_batches"] else "*")


def _report(results: list[dict], header: dict) -> None:
    print(f"clipsearch model speed: {header['machine']}, torch using {header['torch_threads']} threads; batch "
          f"{header['batch_size']}, median of the quiet interleaved timed batches after {header['warmup']} warm-up; "
          "random weights")
    print("         " + ", ".join(f"{key} {value}" for key, value in header["versions"].items()))
    print()
    columns = ("model", "weights (clipsearch)", "px", "params M img+txt", "ckpt MB", "fp32 img/s", "fp32+reparam",
               "auto img/s", "auto", "text ms", "numpy text ms", "load s")
    rows = []
    for result in results:
        runs = result["runs"]
        rows.append((
            result["model"], result["clipsearch_pretrained"] or "-", str(result["image_size"]),
            f"{result['params']['image'] / 1e6:.1f} + {result['params']['text'] / 1e6:.1f}",
            f"{result['checkpoint_bytes'] / 1e6:.0f}", _rate(runs["fp32"]), _rate(runs.get("fp32+reparam")),
            _rate(runs["auto"]), runs["auto"]["precision"], f"{result['text']['ms']:.0f}",
            f"{result['text_numpy']['ms']:.0f}" if result.get("text_numpy") else "-", f"{runs['fp32']['load_s']:.1f}",
        ))
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip())
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if any(run.get("quiet_batches") == 0 for result in results for run in result["runs"].values()):
        print("* no quiet batch: other work kept the machine busy throughout, so this is slower than it should be")
    print()
    _engine_table(results)
    for result in results:
        runs = result["runs"]
        notes = []
        for label, run in runs.items():
            if "images_per_s" in run:
                notes.append(f"{label}: {run['images_per_s']:.1f} images/s (median of {run['quiet_batches']} quiet "
                             f"batches; all {run['batches']}: median {run['images_per_s_all_batches']:.1f}, range "
                             f"{run['min']:.1f}-{run['max']:.1f}), loaded in {run['load_s']:.1f} s")
            if "vs_fp32" in run:
                check = run["vs_fp32"]
                notes.append(f"  embeddings vs fp32: min cosine {check['min_cosine']:.6f}, largest distance "
                             f"{check['max_distance_over_spread']:.1e} of the batch's spread")
        if "fp32+reparam" in runs:
            speedup = runs["fp32+reparam"]["images_per_s"] / runs["fp32"]["images_per_s"]
            notes.append(f"reparameterisation: x{speedup:.2f} images/s; image tower {runs['fp32']['image_params']:,} "
                         f"-> {runs['fp32+reparam']['image_params']:,} parameters")
        if runs["auto"].get("same_as"):
            notes.append("auto: the image tower has no transformer MLP Linear, so nothing is quantised (auto = fp32, "
                         "and --precision int8 is refused)")
        tags = result["open_clip_tags"]
        text = result["text"]
        notes.append(f"text query: {text['ms']:.0f} ms (median of {text['quiet_bursts']} quiet bursts of "
                     f"{text['queries_per_burst']}; all {text['bursts']}: median {text['ms_all_bursts']:.0f}, range "
                     f"{text['min']:.0f}-{text['max']:.0f})")
        query_model, numpy_text = result.get("query_model") or {}, result.get("text_numpy")
        if numpy_text:
            notes.append(f"numpy query model (what `clipsearch query` runs once exported): {numpy_text['ms']:.0f} ms "
                         f"per query (median of {numpy_text['quiet_bursts']} quiet bursts); image tower exported: "
                         f"{'yes' if query_model.get('image') else 'no'}"
                         + (f" ({query_model['reason']})" if query_model.get("reason") else ""))
        elif query_model:
            notes.append(f"no numpy query model: {query_model.get('reason')}")
        notes.append(f"open_clip's first tag: {tags[0] if tags else '-'} ({len(tags)} tags); clipsearch's weights "
                     f"come from hf-hub:{result.get('hf_hub') or '-'}")
        print(f"{result['model']}:")
        for note in notes:
            print(f"  {note}")


def _engine_table(results: list[dict]) -> None:
    """Every engine and precision of each model side by side: images/s and the smallest cosine to torch fp32."""
    for result in results:
        runs = result["runs"]
        rows = [(label, run) for label, run in runs.items() if "images_per_s" in run]
        fp32 = runs["fp32"]["images_per_s"]
        print(f"{result['model']}, batch {rows[0][1]['batch_size']}:")
        print("| engine | images/s | x torch fp32 | min cosine to torch fp32 |\n|---|---|---|---|")
        for label, run in rows:
            name = label if label.startswith("openvino") else f"torch {run['precision']}"
            cosine = run["vs_fp32"]["min_cosine"] if "vs_fp32" in run else 1.0
            print(f"| {name} | {_rate(run)} | {run['images_per_s'] / fp32:.2f} | {cosine:.4f} |")
        converted = next((run["convert_s"] for run in runs.values() if "convert_s" in run), None)
        if converted is not None:
            compiled = ", ".join(f"{label} {run['load_s']:.1f} s" for label, run in runs.items() if "convert_s" in run)
            print(f"converted to OpenVINO IR in {converted:.1f} s; compiled: {compiled}")
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(CANDIDATES), metavar="A,B,...",
                        help="open_clip model names, comma-separated (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="B",
                        help="images per batch (default 32, clipsearch's on a CPU)")
    parser.add_argument("--seconds", type=float, default=10.0, metavar="S",
                        help="time each configuration for about S seconds in all (default 10)")
    parser.add_argument("--min-batches", type=int, default=3, metavar="K",
                        help="and at least K batches (default 3)")
    parser.add_argument("--warmup", type=int, default=2, metavar="W", help="untimed batches first (default 2)")
    parser.add_argument("--patience", type=float, default=0.0, metavar="P",
                        help="on a busy machine, go on for up to P more seconds until each configuration has "
                             "--min-batches quiet batches (default 0)")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="write every figure as JSON to PATH; alone, print the JSON instead of the table")
    args = parser.parse_args(argv)
    models = list(dict.fromkeys(name.strip() for name in args.models.split(",") if name.strip()))
    if not models:
        parser.error("--models: name at least one model")
    for option in ("batch_size", "min_batches"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.seconds < 0 or args.patience < 0:
        parser.error("--warmup, --seconds and --patience cannot be negative")
    for name in models:
        if ModelSpec(name, None).config_path is not None:
            parser.error(f"--models {name}: give open_clip model names, not config files")
        try:
            identify(ModelSpec(name, None))
        except UsageError as error:
            parser.error(str(error))

    spec = {"batch_size": args.batch_size, "seconds": args.seconds, "min_batches": args.min_batches,
            "warmup": args.warmup, "patience": args.patience}
    results, threads = _measure(models, spec)
    header = {"machine": _machine(), "torch_threads": threads, **spec, "versions": _versions(), "query": QUERY}
    document = json.dumps({**header, "models": results}, indent=2) + "\n"
    if args.json == "-":
        sys.stdout.write(document)
        return 0
    _report(results, header)
    if args.json:
        Path(args.json).write_text(document)
    return 0


if __name__ == "__main__":
    if importlib.util.find_spec("open_clip") is None:
        sys.exit("model_speed: open_clip is not installed (pip install -e . in this checkout)")
    sys.exit(main())
