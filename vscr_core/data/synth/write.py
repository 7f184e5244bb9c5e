"""Writes the synthetic UAV vehicle ReID data set to disk, in the UAV-VeID layout.

The real UAV-VeID is given out only on request, so every notebook runs on this by default.
Identities are split in UAV-VeID's proportions, with one gallery image per val/test identity, and
a distractor folder holds false detections and vehicles outside every split; `render` draws the
images, this module plans them and writes the tree, its label lists and `synth_meta.csv`.

Everything random comes from the seed: the plan (identities, viewpoints, scenes) is drawn in
order from one generator, and each image's details from a generator seeded by (seed, image index),
so worker processes produce the same bytes in any order. The tree is built in a hidden
`.partial` folder beside the target (resumable: finished images are kept) and renamed at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ..types import VIEW_NAMES
from ..uav_veid import (
    DISTRACTOR_DIR,
    LIST_FILES,
    SPLIT_DIRS,
    VIEW_FILE,
)
from .render import (
    ImageJob,
    Scene,
    SynthSettings,
    random_identity,
    random_scene,
    render,
    view_of_heading,
)

GENERATOR_VERSION = 4  # bump when the pictures change: the default cache is rebuilt
META_FILE = "synth_meta.csv"  # the generator's ground truth, one row per image
INFO_FILE = "synth_info.json"  # preset, seed and version; written last, marks a finished tree
# UAV-VeID's reported id split, kept equal to paper/reported.py UAV_VEID_SPLITS by test_reported.py
UAV_VEID_IDS = {"train": 1797, "val": 596, "test": 2208}
POOL_MIN_JOBS = 1000  # fewer images render faster in one process than spawning workers

SYNTH_PRESETS: dict[str, SynthSettings] = {
    "smoke": SynthSettings(num_ids=40, images_per_id=5.0, num_distractors=20, num_sequences=8),
    "quick": SynthSettings(num_ids=560, images_per_id=8.0, num_distractors=500,
                           num_sequences=40),
    "full": SynthSettings(num_ids=4601, images_per_id=9.11, num_distractors=300_000),
}


# ---------------------------------------------------------------------------------------------
# The plan: identities, splits and every image's viewpoint and scene, drawn from the seed


def _split_sizes(n: int) -> dict[str, int]:
    total = sum(UAV_VEID_IDS.values())
    train = round(n * UAV_VEID_IDS["train"] / total)
    val = max(1, round(n * UAV_VEID_IDS["val"] / total))
    return {"train": train, "val": val, "test": n - train - val}


def _image_job(rng, index, path, split, kind, ident, scenes, st: SynthSettings) -> ImageJob:
    scene = scenes[rng.integers(len(scenes))]
    return ImageJob(
        index=index, path=path, split=split, kind=kind, identity=ident,
        heading=float(rng.uniform(0, 360)),
        altitude=float(rng.uniform(*st.altitude_m)),
        pitch=float(rng.uniform(*st.pitch_deg)),
        roll=float(rng.normal(0, 6)),
        scene=Scene(**{**scene.__dict__, "exposure": scene.exposure * rng.uniform(0.92, 1.08)}),
        neighbours=int(rng.choice(3, p=[0.3, 0.45, 0.25] if scene.kind == "parking"
                                  else [0.6, 0.3, 0.1])),
        occluder=bool(rng.random() < 0.12),
        blur=float(rng.uniform(0.3, 1.0)) if rng.random() < 0.35 else 0.0,
        jpeg_quality=int(rng.integers(55, 96)),
        margins=tuple(float(m) for m in rng.uniform(0.0, 0.12, 4)),
    )


def plan(settings: SynthSettings, seed: int) -> list[ImageJob]:
    """Every identity's images, in a fixed order, from the seed alone."""
    rng = np.random.default_rng(seed)
    n = settings.num_ids
    idents = [random_identity(rng, vid) for vid in range(n)]
    order = rng.permutation(n)  # which identity goes to which split
    sizes = _split_sizes(n)
    split_of = {}
    start = 0
    for split in ("train", "val", "test"):
        for vid in order[start:start + sizes[split]]:
            split_of[int(vid)] = split
        start += sizes[split]
    # As in UAV-VeID, vehicles are filmed in a few dozen videos: a parked one by one UAV
    # circling (one sequence), a moving one by two UAVs at once (two sequences). Backgrounds
    # are therefore shared by many identities and are no fingerprint of one.
    sequences = [random_scene(rng) for _ in range(settings.num_sequences)]
    jobs: list[ImageJob] = []
    for ident in idents:
        picks = rng.choice(len(sequences), size=1 + int(rng.random() < 0.5), replace=False)
        scenes = [sequences[i] for i in picks]
        count = settings.min_images + rng.poisson(settings.images_per_id - settings.min_images)
        split = split_of[ident.vid]
        gallery = int(rng.integers(count))
        for k in range(count):
            if split == "train":
                sub = "train"
            else:
                sub = f"{'gallery' if k == gallery else 'query'}_{split}"
            path = f"{SPLIT_DIRS[sub]}/{ident.vid:05d}_{k:02d}.jpg"
            jobs.append(_image_job(rng, len(jobs), path, sub, "vehicle", ident, scenes, settings))
    return jobs


def distractor_job(settings: SynthSettings, seed: int, j: int, first_index: int) -> ImageJob:
    """Distractor j: a false detection (background, or a box that cuts a vehicle) or a vehicle
    of an identity outside every split. Drawn from its own generator, so that 300K of them are
    made one at a time where they are rendered, never held in memory together."""
    rng = np.random.default_rng([seed, 0xD15, j])
    kind = ("vehicle", "background", "partial")[rng.choice(3, p=[0.5, 0.25, 0.25])]
    ident = random_identity(rng, settings.num_ids + j)
    return _image_job(rng, first_index + j, f"{DISTRACTOR_DIR}/d{j:06d}.jpg", "distractor", kind,
                      ident, [random_scene(rng)], settings)


# ---------------------------------------------------------------------------------------------
# Writing the tree


def _render_to_file(args) -> tuple[int, str]:
    """Render one job (or distractor number) unless a finished file is there; its metadata row."""
    job, settings, seed, root, first_distractor = args
    if isinstance(job, int):
        job = distractor_job(settings, seed, job, first_distractor)
    out = Path(root) / job.path
    if not out.exists():  # resuming: finished images were written atomically
        img, _ = render(job, settings, seed)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")  # unique if two processes build at once
        img.save(tmp, format="JPEG", quality=job.jpeg_quality)
        os.replace(tmp, out)
        size = img.size
    else:
        with Image.open(out) as im:
            size = im.size
    return job.index, ",".join(map(str, _meta_row(job, size)))


META_COLUMNS = ["path", "split", "pid", "kind", "body", "colour", "marks", "heading_deg", "view",
                "altitude_m", "pitch_deg", "roll_deg", "scene", "grass", "neighbours",
                "occluder", "blur", "jpeg_quality", "box_w", "box_h"]


def _meta_row(job: ImageJob, box: tuple[int, int]) -> list:
    vehicle = job.kind == "vehicle"
    return [job.path, job.split, job.identity.vid if vehicle else -1, job.kind,
            job.identity.body, job.identity.colour, ";".join(job.identity.marks),
            f"{job.heading:.2f}", VIEW_NAMES[4][view_of_heading(job.heading)],
            f"{job.altitude:.2f}", f"{job.pitch:.2f}", f"{job.roll:.2f}", job.scene.kind,
            int(job.scene.grass), job.neighbours, int(job.occluder), f"{job.blur:.2f}",
            job.jpeg_quality, *box]


def generate_dataset(out_dir, preset: str = "quick", seed: int = 0,
                     num_distractors: int | None = None, progress: bool = True,
                     workers: int | None = None) -> Path:
    """Write a synthetic UAV-VeID tree into `out_dir` (which must not exist yet) and return it.

    Same preset, seed and distractor count give the same bytes. The tree is built in a hidden
    `.partial` folder beside `out_dir` and renamed when complete; rerunning after an interruption
    keeps the images already written. `workers` processes render (default: all cores)."""
    if preset not in SYNTH_PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; expected one of "
                         f"{list(SYNTH_PRESETS)}")
    settings = SYNTH_PRESETS[preset]
    n_distr = settings.num_distractors if num_distractors is None else int(num_distractors)
    if not 0 <= n_distr <= 1_000_000:
        raise ValueError(f"num_distractors must be in [0, 1e6], got {n_distr}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; the generator writes only into a new folder")
    tag = f"{preset}-s{seed}-d{n_distr}-v{GENERATOR_VERSION}"
    tmp = out_dir.parent / f".{out_dir.name}.partial-{tag}"
    for sub in [*SPLIT_DIRS.values(), DISTRACTOR_DIR]:
        (tmp / sub).mkdir(parents=True, exist_ok=True)

    # Another process may build the same tree in the same partial folder at once (two studies, or
    # a report beside a paused study); whichever finishes first renames the folder into place,
    # and the other's next write into it fails. Then that finished tree is ours too.
    try:
        _build_tree(tmp, settings, preset, seed, n_distr, workers or os.cpu_count() or 1,
                    progress)
        os.replace(tmp, out_dir)
    except OSError:
        if not is_complete(out_dir, preset, seed, n_distr):
            raise
    return out_dir


def _build_tree(tmp: Path, settings: SynthSettings, preset: str, seed: int, n_distr: int,
                workers: int, progress: bool) -> None:
    """Render every image of the tree into `tmp` (keeping those already there), then write its
    label lists, view file, metadata and, last, its info file."""
    jobs = plan(settings, seed)
    total = len(jobs) + n_distr
    rows: dict[int, str] = {}  # image index -> metadata row
    args = ((job, settings, seed, str(tmp), len(jobs)) for job in [*jobs, *range(n_distr)])
    from tqdm.auto import tqdm  # here, not at the top: the core imports without tqdm

    with tqdm(total=total, desc=f"synth {preset}", unit="img", disable=not progress) as bar:
        if workers > 1 and total >= POOL_MIN_JOBS:
            # fork where it is safe (Linux; workers use only numpy and PIL, no threads of the
            # caller's): it needs no `if __name__ == "__main__"` guard in the caller's script
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            with multiprocessing.get_context(method).Pool(workers) as pool:
                for index, row in pool.imap_unordered(_render_to_file, args, chunksize=16):
                    rows[index] = row
                    bar.update()
        else:
            for a in args:
                index, row = _render_to_file(a)
                rows[index] = row
                bar.update()

    # Label lists (names relative to the split folder), the one-hot view file, metadata, info.
    lists: dict[str, list[str]] = {k: [] for k in LIST_FILES}
    views = []
    for job in jobs:
        name = job.path.split("/", 1)[1]
        if job.split in lists:
            lists[job.split].append(f"{name} {job.identity.vid}\n")
        if job.split == "train":
            onehot = ["0"] * 4
            onehot[view_of_heading(job.heading)] = "1"
            views.append(f"{name} {' '.join(onehot)}\n")
    for split, lines in lists.items():
        (tmp / LIST_FILES[split]).write_text("".join(lines))
    (tmp / VIEW_FILE).write_text("".join(views))
    with open(tmp / META_FILE, "w") as f:
        f.write(",".join(META_COLUMNS) + "\n")
        f.writelines(rows[i] + "\n" for i in range(total))
    info = {"generator_version": GENERATOR_VERSION, "preset": preset, "seed": seed,
            "num_distractors": n_distr, "num_images": total,
            "settings": settings.__dict__}
    for stale in tmp.glob("*/*.tmp"):  # left by workers killed in an earlier attempt
        stale.unlink()
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def is_complete(root, preset: str, seed: int, num_distractors: int | None = None) -> bool:
    """Whether `root` is a finished tree of this preset, seed and generator version."""
    info = Path(root) / INFO_FILE
    if not info.is_file():
        return False
    got = json.loads(info.read_text())
    n_distr = SYNTH_PRESETS[preset].num_distractors if num_distractors is None else num_distractors
    return (got.get("generator_version"), got.get("preset"), got.get("seed"),
            got.get("num_distractors")) == (GENERATOR_VERSION, preset, seed, n_distr)
