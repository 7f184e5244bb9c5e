"""GPU check: the paper profile's training step and the UAV-VeID test protocol on a CUDA machine.

(1) Training: the `paper` profile's network (ResNet-50, 224 x 224, built with pretrained=None: the
    GPU machine is offline), bf16 autocast and channels-last, on random images with PK labels
    (P x K = 8 x 4, the paper's batch), with the project's model, losses and optimiser settings.
    Baseline (d = 1, no view adversary) and VSCR (d = 1, 2, 3 and the adversary): images/s over
    the timed steps and peak GPU memory (torch.cuda.max_memory_allocated).
(2) Evaluation: UAV-VeID test, 16,850 queries against 2,208 gallery images + 300,000 distractors,
    512-D features generated on the device (clustered by identity as in bench_evaluate.py, so the
    ranking is not trivial), through `evaluate_uav_veid`: time, peak GPU memory, peak host RSS.
    The exact rank engine runs on the CPU: it copies the features to host memory, so this time
    is the host's and includes that copy.

It needs torch and numpy only (no tqdm, matplotlib): the GPU machine has its own python3 and
not this project's venv. Prints a summary; writes the numbers as JSON to --out, else to
$OUT/gpu_check.json when OUT is set (after each part, so a run cut short keeps what it measured).

    PYTHONPATH=. python3 benchmarks/gpu_check.py                        # or: make gpu-check
    PYTHONPATH=. python3 benchmarks/gpu_check.py --device cpu --smoke   # tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import time
from pathlib import Path

import torch

from vscr_core.config import profile
from vscr_core.evaluate import evaluate_uav_veid
from vscr_core.losses import grl_ramp
from vscr_core.model import VSCRNet
from vscr_core.train import train_step

NUM_IDS = 1797  # UAV-VeID's training identities: the classifier's width
DIM = 512  # the paper's feature width

# name -> sizes. "full" stays under 10 minutes on an H100: both variants' steps take about a
# minute at a few hundred images/s, the evaluation about 30 s (26 s on 2 CPU cores, README).
SIZES = {
    "full": dict(image_size=(224, 224), ids_per_batch=8, images_per_id=4, steps=300, warmup=20,
                 queries=16_850, gallery=2_208, distractors=300_000),
    "smoke": dict(image_size=(32, 32), ids_per_batch=2, images_per_id=2, steps=1, warmup=1,
                  queries=200, gallery=50, distractors=2_000),
}
VARIANTS = {"baseline": dict(dilations=(1,), view_adversary=False),
            "vscr": dict(dilations=(1, 2, 3), view_adversary=True)}


def peak_gpu_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def reset_gpu_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pk_batch(size: dict, num_views: int, gen: torch.Generator):
    """A batch of random normalised images (channels-last) with PK identity labels and random
    view labels, drawn on the generator's device: one batch on the GPU at a time, as in fit()."""
    p, k, device = size["ids_per_batch"], size["images_per_id"], gen.device
    x = torch.randn(p * k, 3, *size["image_size"], device=device, generator=gen)
    pids = torch.randperm(NUM_IDS, device=device, generator=gen)[:p].repeat_interleave(k)
    views = torch.randint(0, num_views, (p * k,), device=device, generator=gen)
    return x.contiguous(memory_format=torch.channels_last), pids, views


def train_variant(name: str, size: dict, device: torch.device) -> dict:
    """Warm-up then timed training steps of one variant: fit()'s step (train.train_step: bf16
    autocast, fit's precision "auto" on a bf16 GPU, so the gradient scaler is off; Eq. 11 with the
    profile's weights; SGD) and the reversal ramp, on generated batches instead of fit()'s data
    loader."""
    cfg = profile("paper")
    model_cfg = dataclasses.replace(cfg.model, pretrained=None, **VARIANTS[name])
    t = cfg.train
    reset_gpu_peak(device)
    torch.manual_seed(t.seed)
    model = VSCRNet.from_config(model_cfg, NUM_IDS).to(device, memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                                weight_decay=t.weight_decay)
    gen = torch.Generator(device).manual_seed(0)
    total_steps = size["warmup"] + size["steps"]
    losses = []  # detached, read after the timed steps: no host sync inside them

    scaler = torch.amp.GradScaler(device.type, enabled=False)  # bf16 needs none

    def step(i: int) -> None:
        images, pids, views = pk_batch(size, model_cfg.num_views, gen)
        if t.grl_ramp:
            model.grl_lambda = model_cfg.grl_lambda * grl_ramp(i / total_steps)
        parts = train_step(model, model, optimizer, scaler, images, pids, views, t, device,
                           torch.bfloat16)
        losses.append(parts["total"].detach())

    for i in range(size["warmup"]):
        step(i)
    sync(device)
    tic = time.perf_counter()
    for i in range(size["warmup"], total_steps):
        step(i)
    sync(device)
    seconds = time.perf_counter() - tic
    values = [float(v) for v in losses]
    if not all(map(math.isfinite, values)):
        raise RuntimeError(f"{name}: non-finite loss during the check ({values})")
    batch = size["ids_per_batch"] * size["images_per_id"]
    return {
        "dilations": list(model_cfg.dilations), "view_adversary": model_cfg.view_adversary,
        "batch": batch, "timed_steps": size["steps"], "warmup_steps": size["warmup"],
        "seconds": seconds, "images_per_s": batch * size["steps"] / seconds,
        "peak_gpu_mb": peak_gpu_mb(device), "loss_first": values[0], "loss_last": values[-1],
    }


def clustered_features(pids: torch.Tensor, centres: torch.Tensor, gen: torch.Generator):
    """Identity centre + Gaussian noise (0.07 a dimension), as bench_evaluate.clustered."""
    return centres[pids] + 0.07 * torch.randn(len(pids), DIM, device=pids.device, generator=gen)


def evaluate_protocol(size: dict, device: torch.device) -> dict:
    """UAV-VeID test + distractors on features generated on the device: one gallery image per
    identity, distractors from 30,000 identities of their own (bench_evaluate's setting)."""
    reset_gpu_peak(device)
    gen = torch.Generator(device).manual_seed(5)
    n_ids, n_distr_ids = size["gallery"], 30_000
    # Identities share most of their appearance (48 directions), so they get confused.
    basis = torch.randn(48, DIM, device=device, generator=gen) / 48**0.5
    centres = torch.randn(n_ids + n_distr_ids, 48, device=device, generator=gen) @ basis
    centres /= DIM**0.5  # norm about 1
    q_pids = torch.randint(0, n_ids, (size["queries"],), device=device, generator=gen)
    g_pids = torch.arange(n_ids, device=device)
    d_pids = n_ids + torch.randint(0, n_distr_ids, (size["distractors"],), device=device,
                                   generator=gen)
    q, g, d = (clustered_features(p, centres, gen) for p in (q_pids, g_pids, d_pids))
    sync(device)
    tic = time.perf_counter()
    m = evaluate_uav_veid(q, g, q_pids, g_pids, distractor_feats=d, progress=False)
    seconds = time.perf_counter() - tic
    return {
        "queries": size["queries"], "gallery": size["gallery"],
        "distractors": size["distractors"], "dim": DIM, "seconds": seconds,
        "peak_gpu_mb": peak_gpu_mb(device),
        "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rank1": m.rank(1), "mAP": m.mAP, "rank_engine": "CPU (vscr_core._rank)",
    }


def device_info(device: torch.device) -> dict:
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


def fmt_mb(mb: float | None) -> str:
    return "n/a (not CUDA)" if mb is None else f"{mb:,.0f} MB"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) | cuda:N | cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: a check of the script")
    ap.add_argument("--steps", type=int, help="timed training steps per variant (300; smoke 1)")
    ap.add_argument("--out", type=Path, help="JSON file (default $OUT/gpu_check.json if OUT set)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: CUDA is not available on this machine; run it on the GPU "
                         "machine, or here with --device cpu --smoke")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SystemExit(f"gpu_check: {torch.cuda.get_device_name(device)} has no bf16, which "
                         "this check measures")
    size = dict(SIZES["smoke" if args.smoke else "full"])
    if args.steps is not None:
        if args.steps < 1:
            raise SystemExit(f"gpu_check: --steps must be at least 1, got {args.steps}")
        size["steps"] = args.steps
    out = args.out or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT")
                       else None)

    report = {**device_info(device), "sizes": "smoke" if args.smoke else "full",
              "train": {}, "eval": None}

    def save() -> None:
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2))

    h, w = size["image_size"]
    print(f"gpu_check on {report.get('gpu', device)} (torch {torch.__version__}); "
          f"ResNet-50 {h}x{w}, batch {size['ids_per_batch']}x{size['images_per_id']}, "
          f"bf16 autocast + channels-last, steps: {size['warmup']} warm-up + {size['steps']} "
          f"timed")
    for name in VARIANTS:
        r = report["train"][name] = train_variant(name, size, device)
        save()
        print(f"  train {name:8s} {r['images_per_s']:8.1f} img/s  peak GPU memory "
              f"{fmt_mb(r['peak_gpu_mb'])}  loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}")
    base, vscr = report["train"]["baseline"], report["train"]["vscr"]
    report["train"]["time_ratio_vscr_to_baseline"] = base["images_per_s"] / vscr["images_per_s"]
    print(f"  VSCR step / baseline step: {report['train']['time_ratio_vscr_to_baseline']:.2f}x")
    e = report["eval"] = evaluate_protocol(size, device)
    save()
    print(f"  eval UAV-VeID {e['queries']:,} x ({e['gallery']:,} + {e['distractors']:,}) "
          f"{e['seconds']:.1f} s, ranked on {report['cpu_threads']} CPU threads  peak GPU memory "
          f"{fmt_mb(e['peak_gpu_mb'])} (the features)  peak host RSS "
          f"{e['peak_host_rss_mb']:,.0f} MB (the process)  "
          f"(rank-1 {e['rank1']:.3f}, mAP {e['mAP']:.3f} on random features)")
    if out is not None:
        print(f"  numbers in {out}")
    return report


if __name__ == "__main__":
    main()
