"""Notebook 00: the data set in numbers beside the paper's Table 1 and UAV-VeID's split, Fig. 3
(box sizes, images per identity, views) and a contact sheet of identities by view."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vscr_core import viz
from vscr_core.data import ReIDDataset, dataset_statistics
from vscr_core.data.registry import dataset_spec
from vscr_core.paper import reported
from vscr_core.paper.notebook import NotebookRun
from vscr_core.train import load_data

_PID_STRIDE = 10**7  # keeps ids of different splits apart when they are pooled


@dataclass
class DatasetParts:
    """A data set's images by split: train, val, test (each labelled split's query + gallery),
    distractors; `all` pools the labelled splits with ids kept apart."""

    name: str
    num_views: int
    splits: dict = field(default_factory=dict)  # split -> list[Sample]

    def as_dataset(self):
        """The training split (with its view labels) and the distractors as a ReIDDataset."""
        return ReIDDataset(self.name, self.splits["train"], [], [],
                           self.splits.get("distractors", []), self.num_views)

    @property
    def all(self):
        pooled = []
        for k, split in enumerate(s for s in ("train", "val", "test") if s in self.splits):
            pooled += [s._replace(pid=s.pid + k * _PID_STRIDE) for s in self.splits[split]]
        return pooled


def load_parts(cfg) -> DatasetParts:
    """The data set a notebook's Config reads (`run.config`), by split. The synthetic default is
    generated on first use (data.root None: the cache under $VSCR_DATA or data/)."""
    d = cfg.data
    spec = dataset_spec(d.dataset)
    if spec.splits:  # UAV-VeID's layout: train, val and test
        val = load_data(cfg, split="val")
        test = load_data(cfg, split="test", distractors=False)
        name = f"synth-{d.synth_preset}-s{d.synth_seed}" if d.dataset == "synth" else spec.display
        splits = {"train": val.train, "val": val.query + val.gallery,
                  "test": test.query + test.gallery, "distractors": val.distractors}
        return DatasetParts(name, val.num_views, splits)
    ds = load_data(cfg)
    return DatasetParts(spec.display, ds.num_views, {
        "train": ds.train, "test": ds.query + ds.gallery, "distractors": ds.distractors})


def split_statistics(parts: DatasetParts, box_sizes: bool = True) -> dict:
    """data.dataset_statistics of each split and of `all` (labelled splits pooled)."""
    out = {}
    for split, samples in [*parts.splits.items(), ("all", parts.all)]:
        ds = ReIDDataset(f"{parts.name}-{split}", samples, [], [], [], parts.num_views)
        out[split] = dataset_statistics(ds, box_sizes=box_sizes)["train"]
    return out


def table1(parts: DatasetParts, stats: dict) -> pd.DataFrame:
    """The paper's Table 1 rows (source 'reported') and the measured data set (source
    'measured'). Images per id of a reported row is images / identities of that row."""
    rows = [{"dataset": n, "source": "reported (paper Table 1)", "identities": ids,
             "images": imgs, "images_per_id": round(imgs / ids, 2), "distractors": d,
             "cameras": cam, "views": views, "year": year}
            for n, ids, imgs, d, cam, views, year in reported.TABLE1]
    whole = stats["all"]
    labelled = sum(v for k, v in stats["train"]["views"].items() if k != "unknown")
    rows.append({"dataset": parts.name, "source": "measured", "identities": whole["ids"],
                 "images": whole["images"],
                 "images_per_id": round(whole["images_per_id"]["mean"], 2),
                 "distractors": stats.get("distractors", {}).get("images", 0),
                 "cameras": "simulated UAV" if parts.name.startswith("synth") else "",
                 "views": f"{parts.num_views} classes ({labelled} train images labelled)"
                 if parts.num_views else "none labelled", "year": ""})
    return pd.DataFrame(rows)


def split_table(stats: dict) -> pd.DataFrame:
    """Per split: identities, images, images per id and box sizes measured, beside UAV-VeID's
    reported split sizes (the synthetic set keeps its proportions at a smaller scale)."""
    rows = []
    for split, st in stats.items():
        rep = reported.UAV_VEID_SPLITS.get(split)
        rows.append({
            "split": split,
            "identities_reported": rep[0] if rep else None,
            "images_reported": rep[1] if rep else None,
            "images_per_id_reported": round(rep[1] / rep[0], 2) if rep and rep[0] else None,
            "identities_measured": st["ids"], "images_measured": st["images"],
            "images_per_id_measured": round(st["images_per_id"]["mean"], 2) if st["ids"] else None,
            "box_w_median_px": st.get("box_w", {}).get("median"),
            "box_h_median_px": st.get("box_h", {}).get("median"),
        })
    df = pd.DataFrame(rows)
    counts = ["identities_reported", "images_reported", "identities_measured", "images_measured"]
    return df.astype({c: "Int64" for c in counts})  # integers with gaps, not 1797.0


def fig3(run: NotebookRun, parts: DatasetParts, stats: dict) -> Path:
    """Fig. 3 of the labelled splits pooled; views from the training split (the only one with
    view labels, as in UAV-VeID)."""
    return viz.plot_dataset_statistics(
        stats["all"], run.figure_path("fig3_dataset_statistics"), views=stats["train"]["views"],
        title=f"Fig. 3: {parts.name} (box sizes and images per id: all labelled splits; "
              "views: training split)")


def contact_sheet(run: NotebookRun, parts: DatasetParts) -> Path:
    """figures/synth_contact_sheet.png (<dataset>_contact_sheet.png for a real data set)."""
    name = "synth_contact_sheet" if run.dataset == "synth" else f"{run.dataset}_contact_sheet"
    return viz.contact_sheet(parts.as_dataset(), run.figure_path(name), seed=run.seeds[0])


def table1_statement(table: pd.DataFrame, splits: pd.DataFrame) -> str:
    """One sentence per fact of the measured row, from the tables (not typed by hand)."""
    m = table[table["source"] == "measured"].iloc[0]
    uav = table[table["dataset"] == "UAV-VeID"].iloc[0]
    lab = splits[splits["split"].isin(["train", "val", "test"])]
    share_m = (lab["identities_measured"] / lab["identities_measured"].sum()).round(3).tolist()
    share_r = (lab["identities_reported"] / lab["identities_reported"].sum()).round(3).tolist()
    return (f"Measured {m['dataset']}: {m['identities']} identities, {m['images']} labelled "
            f"images ({m['images_per_id']} per identity; UAV-VeID's reported counts give "
            f"{uav['images_per_id']}), {m['distractors']} distractors; views: {m['views']}.\n"
            f"Identity shares train/val/test: measured {share_m}, UAV-VeID {share_r}.")
