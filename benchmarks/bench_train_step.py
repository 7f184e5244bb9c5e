"""Images/s of one training step: the baseline (d = 1, no adversary) vs VSCR (d = 1, 2, 3 and the
view adversary), beside the ratio of their FLOPs.

VSCR replicates res5 only; the trunk runs once per batch. So VSCR's step should cost about what its
extra FLOPs say: the target is time ratio <= 1.1 x FLOP ratio.

    .venv/bin/python benchmarks/bench_train_step.py [--steps 3] [--precision auto]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from vscr_core.config import profile
from vscr_core.model import VSCRNet
from vscr_core.runtime import amp_settings
from vscr_core.train import train_step

NUM_IDS = 576  # VeRi-776's training identities


def make(dilations, adversary, backbone):
    cfg = dataclasses.replace(profile("paper").model, backbone=backbone, dilations=dilations,
                              view_adversary=adversary, pretrained=None)
    return VSCRNet.from_config(cfg, NUM_IDS)


def step_fn(model, x, pids, views, dtype):
    """fit()'s training step (train.train_step) with the paper profile's losses and SGD."""
    model.train()
    t = profile("paper").train
    opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                          weight_decay=t.weight_decay)
    scaler = torch.amp.GradScaler(x.device.type, enabled=dtype == torch.float16)
    return lambda: train_step(model, model, opt, scaler, x, pids, views, t, x.device, dtype)


def prepare(model, size, batch, precision):
    """A closure running one training step of `model`, and the FLOPs of that step."""
    device = torch.device("cpu")
    dtype, channels_last = amp_settings(device, precision)
    x = torch.randn(batch, 3, *size)
    pids = torch.arange(batch // 4).repeat_interleave(4)
    views = torch.randint(0, 4, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    step = step_fn(model, x, pids, views, dtype)
    with FlopCounterMode(display=False) as counter:
        step()  # also the warm-up
    step()
    return step, counter.get_total_flops()


def interleaved_seconds(steps: dict, rounds: int) -> dict:
    """Median seconds per step of each closure, run in turns so that a change in the machine's
    load during the benchmark hits all of them alike."""
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            tic = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - tic)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each network")
    parser.add_argument("--batch", type=int, default=32, help="P x K = 8 x 4 in the paper")
    parser.add_argument("--precision", default="auto", help="auto (bf16 on CPU) | fp32")
    args = parser.parse_args()
    quick = profile("quick")
    settings = [("paper", "resnet50", (224, 224)),
                ("quick", quick.model.backbone, quick.data.image_size)]
    print(f"threads {torch.get_num_threads()}, precision {args.precision}, batch {args.batch}")
    print(f"{'setting':28s} {'baseline img/s':>15s} {'VSCR img/s':>11s} {'time ratio':>11s} "
          f"{'FLOP ratio':>11s} {'time/FLOP':>10s}")
    for name, backbone, size in settings:
        base_step, base_flops = prepare(make((1,), False, backbone), size, args.batch,
                                        args.precision)
        vscr_step, vscr_flops = prepare(make((1, 2, 3), True, backbone), size, args.batch,
                                        args.precision)
        sec = interleaved_seconds({"base": base_step, "vscr": vscr_step}, args.steps)
        base_ips, vscr_ips = args.batch / sec["base"], args.batch / sec["vscr"]
        time_ratio, flop_ratio = sec["vscr"] / sec["base"], vscr_flops / base_flops
        label = f"{name}: {backbone} {size[0]}x{size[1]}"
        verdict = "ok" if time_ratio <= 1.1 * flop_ratio else "ABOVE TARGET"
        print(f"{label:28s} {base_ips:15.1f} {vscr_ips:11.1f} {time_ratio:11.2f} "
              f"{flop_ratio:11.2f} {time_ratio / flop_ratio:10.2f} {verdict}")
    print("target: time ratio <= 1.1 x FLOP ratio (the trunk is computed once per batch)")


if __name__ == "__main__":
    main()
