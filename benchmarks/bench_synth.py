"""Images/s of the synthetic data generator, and the total time of a preset (default: quick).

The issue's target: the quick preset in under 2 minutes on 2 cores. Each run also times one
worker process rendering alone (in memory, no disk) for the per-core speed, and reports the load
average, since other work on the machine slows both.

    .venv/bin/python benchmarks/bench_synth.py [--preset quick] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from vscr_core.data.synth import SYNTH_PRESETS, generate_dataset
from vscr_core.data.synth.render import render
from vscr_core.data.synth.write import plan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="quick", choices=list(SYNTH_PRESETS))
    ap.add_argument("--workers", type=int, default=None, help="default: all cores")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    settings = SYNTH_PRESETS[args.preset]
    jobs = plan(settings, args.seed)
    n_images = len(jobs) + settings.num_distractors
    t = time.perf_counter()
    for job in jobs[:300]:
        render(job, settings, args.seed)
    one_core = 300 / (time.perf_counter() - t)

    workers = args.workers or os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        root = generate_dataset(Path(tmp) / "tree", args.preset, args.seed, progress=False,
                                workers=workers)
        total = time.perf_counter() - t
        size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
    load = os.getloadavg()[0]
    print(f"preset {args.preset}: {n_images} images ({settings.num_ids} ids, "
          f"{settings.num_distractors} distractors), {size_mb:.0f} MB")
    print(f"render only, 1 process: {one_core:.0f} images/s")
    print(f"generate_dataset, {workers} workers: {total:.1f} s total, "
          f"{n_images / total:.0f} images/s (load average {load:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
