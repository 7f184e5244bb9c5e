"""Figures. contact_sheet: what the (synthetic) data look like, identities x views."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vscr_core.data.types import UNKNOWN, VIEW_NAMES, ReIDDataset
from vscr_core.files import save_figure


def contact_sheet(dataset_or_root, out_png, num_ids: int = 8, cell: int = 128,
                  num_distractors: int = 4, seed: int = 0) -> Path:
    """A grid of training identities (rows) x views (columns) plus a row of distractors, each
    crop scaled to fit its cell with its stored size written under it. `dataset_or_root`: a
    ReIDDataset with view labels, or a UAV-VeID-layout folder. Identities that show every view
    are preferred; an empty cell means the identity has no image from that view."""
    import random

    from vscr_core.data.uav_veid import load_uav_veid

    ds = dataset_or_root if isinstance(dataset_or_root, ReIDDataset) else load_uav_veid(
        dataset_or_root)
    views = VIEW_NAMES.get(ds.num_views, ("unknown",))
    by_id: dict[int, dict[int, str]] = {}
    for s in ds.train:
        by_id.setdefault(s.pid, {}).setdefault(s.view, s.path)
    ids = sorted(by_id, key=lambda p: (-len(by_id[p]), p))  # fullest rows first
    ids = sorted(random.Random(seed).sample(ids[: max(num_ids * 3, num_ids)],
                                            min(num_ids, len(ids))))
    label_w, text_h = 70, 16
    font = ImageFont.load_default(size=12)
    rows = len(ids) + (1 if num_distractors and ds.distractors else 0)
    sheet = Image.new("RGB", (label_w + cell * len(views), text_h + rows * (cell + text_h)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(views):
        draw.text((label_w + j * cell + cell // 2, 2), name, fill="black", font=font, anchor="ma")

    def paste(path: str, x: int, y: int) -> None:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            k = min((cell - 4) / w, (cell - 4) / h)
            im = im.resize((max(1, round(w * k)), max(1, round(h * k))), Image.NEAREST)
            sheet.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
        draw.text((x + cell // 2, y + cell), f"{w}x{h}", fill="gray", font=font, anchor="ma")

    for i, pid in enumerate(ids):
        y = text_h + i * (cell + text_h)
        draw.text((4, y + cell // 2), f"id {pid}", fill="black", font=font, anchor="lm")
        for j in range(len(views)):
            path = by_id[pid].get(j if ds.num_views else UNKNOWN)
            if path:
                paste(path, label_w + j * cell, y)
    if num_distractors and ds.distractors:
        y = text_h + len(ids) * (cell + text_h)
        draw.text((4, y + cell // 2), "distractor", fill="black", font=font, anchor="lm")
        picks = random.Random(seed).sample(ds.distractors,
                                           min(num_distractors, len(views), len(ds.distractors)))
        for j, s in enumerate(picks):
            paste(s.path, label_w + j * cell, y)
    return save_figure(sheet, out_png)


def plot_dataset_statistics(stats: dict, out_png, title: str = "Fig. 3: data set statistics",
                            views: dict | None = None) -> Path:
    """Fig. 3 from one entry of data.dataset_statistics (a split, or the labelled splits pooled):
    (a) box widths and heights, (b) images per identity, (c) views. `views` replaces the entry's
    view histogram (e.g. the training split's, the only one with view labels)."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8), dpi=130, layout="constrained")
    ax_box, ax_ids, ax_view = fig.subplots(1, 3)
    wh = np.asarray(stats.get("box_sizes", np.zeros((0, 2))))
    if len(wh):
        bins = np.linspace(0, wh.max() + 8, 40)
        ax_box.hist(wh[:, 0], bins=bins, alpha=0.6, label="width", color="tab:blue")
        ax_box.hist(wh[:, 1], bins=bins, alpha=0.6, label="height", color="tab:orange")
        ax_box.legend()
    ax_box.set(xlabel="box side (px, as stored)", ylabel="images",
               title=f"(a) box size ({len(wh)} images)")
    hist = stats["images_per_id"]["histogram"]
    ax_ids.bar(list(hist), list(hist.values()), color="tab:green", width=0.8)
    ax_ids.set(xlabel="images per identity", ylabel="identities",
               title=f"(b) images per identity ({stats['ids']} ids)")
    ax_ids.xaxis.get_major_locator().set_params(integer=True)
    counts = dict(views if views is not None else stats["views"])
    unknown = counts.pop("unknown", 0)
    ax_view.bar(list(counts), list(counts.values()), color="tab:purple")
    ax_view.set(xlabel="viewpoint", ylabel="images",
                title=f"(c) viewpoints ({sum(counts.values())} labelled"
                      + (f", {unknown} unlabelled)" if unknown else ")"))
    for ax in (ax_box, ax_ids, ax_view):
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    return save_figure(fig, out_png)
