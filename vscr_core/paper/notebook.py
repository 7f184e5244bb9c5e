"""NotebookRun: what every notebook starts with. It holds the notebook's parameters (profile,
data set, seeds, out_dir, ...), turns them into the Config of each model the notebook needs, and
writes tables and figures with their provenance:

    run = NotebookRun("02_branch_ablation", profile, dataset, data_root, device, seeds, out_dir)
    runs = run.metrics("multi_scale", seed=0)        # trained once, cached under results/runs/
    run.write_table(df, "table2_branch_ablation")    # <out_dir>/results/<name>.csv + .json
    run.figure_path("fig_ablation")                  # <out_dir>/figures/<name>.png
    run.finish()                                     # rebuilds <out_dir>/figures/index.html
"""

from __future__ import annotations

import platform
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vscr_core.config import profile as profile_config
from vscr_core.config import profile_settings
from vscr_core.data.registry import dataset_spec
from vscr_core.files import git_commit
from vscr_core.paper.results import (
    RESULTS,
    build_index,
    figure_path,
    resolve_out_dir,
    write_table,
)
from vscr_core.runtime import describe_hardware, resolve_device

# Notebooks run without ipywidgets; tqdm.auto then falls back to text bars and warns once.
warnings.filterwarnings("ignore", message="IProgress not found")


def resolve_seeds(seeds, profile: str) -> tuple[int, ...]:
    """None: the profile's default; an int, "0,1,2", "[0, 1]" or a list: those seeds."""
    if seeds is None:
        return profile_settings(profile).seeds
    if isinstance(seeds, str):
        seeds = [s for s in re.split(r"[\s,\[\]()]+", seeds) if s]
    if isinstance(seeds, int | np.integer):
        seeds = [seeds]
    try:
        out = tuple(int(s) for s in seeds)
    except (TypeError, ValueError) as e:
        raise ValueError(f"seeds={seeds!r}: expected an int, a list of ints or '0,1,2'") from e
    if not out:
        raise ValueError(f"seeds={seeds!r}: expected at least one seed")
    return out


@dataclass
class NotebookRun:
    """One execution of a notebook: its parameters, its start time, and where it writes."""

    notebook: str
    profile: str = "quick"
    dataset: str = "synth"
    data_root: str | None = None
    device: str = "auto"
    seeds: tuple[int, ...] | None = None
    out_dir: Path | None = None
    view_labels: str | None = None  # a file of `vscr viewpoint label` (data without views)
    data_csv: str | None = None  # the folder layout's CSV (path,pid[,camid][,view],split)
    started: float = field(default_factory=time.perf_counter)
    written: list[Path] = field(default_factory=list)

    def __post_init__(self):
        self.settings = profile_settings(self.profile)  # an unknown profile fails here
        print(f"profile {self.profile}: {self.settings.about}")
        self.seeds = resolve_seeds(self.seeds, self.profile)
        self.out_dir = resolve_out_dir(self.out_dir)
        self.commit = git_commit()

    @property
    def config(self):
        """The profile's Config with this run's data set (and the paper's choices for it, see
        config.profile), root, CSV, view labels and device."""
        return profile_config(self.profile, **{
            "data.dataset": self.dataset, "data.root": self.data_root, "data.csv": self.data_csv,
            "data.view_labels": self.view_labels, "train.device": self.device})

    @property
    def fig8_distractors(self) -> int | None:
        """Distractors of Fig. 8's synthetic tree (None: the preset's own)."""
        return self.settings.fig8_distractors if self.dataset == "synth" else None

    @property
    def view_classes(self) -> int:
        """The view classes of the run's data set (train.view_classes)."""
        from vscr_core.train import view_classes

        return view_classes(self.config)

    @property
    def runs_dir(self) -> Path:
        """Trained models live in <out_dir>/results/runs/, shared by all notebooks."""
        return self.out_dir / RESULTS / "runs"

    def variant(self, name: str, seed: int | None = None):
        """The Config of an ablation variant (variants.VARIANTS) under this run's parameters, on
        its seed's schedule (Profile.schedule); seed None: the run's first seed."""
        from vscr_core.paper.variants import scheduled_variant

        seed = int(self.seeds[0] if seed is None else seed)
        return scheduled_variant(self.settings, name, seed, self.config)

    def trained_model(self, name: str, seed: int | None = None, progress: bool = True):
        """Variant `name`, trained once in runs_dir (reused by every notebook that asks)."""
        from vscr_core import experiments

        return experiments.trained_model(self.variant(name, seed), self.runs_dir, progress)

    def metrics(self, name: str, seed: int | None = None, protocol: dict | None = None,
                num_distractors: int = 0, progress: bool = True) -> dict:
        """experiments.run of variant `name`: its metrics on `protocol` (default: validation)."""
        from vscr_core import experiments

        return experiments.run(self.variant(name, seed), protocol=protocol,
                               num_distractors=num_distractors, runs_dir=self.runs_dir,
                               progress=progress)

    def chance(self, protocol: dict | None = None, num_distractors: int = 0) -> dict:
        """What a random ranking scores (fractions) under the evaluation protocol experiments.run
        uses (default: the validation split of UAV-VeID and the synthetic set)."""
        from vscr_core.experiments import measured_chance

        return measured_chance(self.config, protocol, num_distractors)

    @property
    def ablation_protocol(self) -> dict | None:
        """The evaluation protocol of Tables 2-4 (experiments.run's `protocol`; None: the data
        set's default, validation for UAV-VeID and the synthetic set)."""
        split = self.settings.ablation_split
        return (dataset_spec(self.dataset).protocol(split) or None) if split else None

    @property
    def ablation_split(self) -> str:
        from vscr_core.experiments import default_protocol

        return (self.ablation_protocol or default_protocol(self.config)).get("split", "test")

    @property
    def table2_seeds(self) -> tuple[int, ...]:
        return self.settings.table2_seed_list(self.seeds)

    def provenance(self, **extra) -> dict:
        return {"commit": self.commit, "notebook": self.notebook, "profile": self.profile,
                "profile_about": self.settings.about,
                "dataset": self.dataset, "data_root": self.data_root, "data_csv": self.data_csv,
                "view_labels": self.view_labels, "seeds": list(self.seeds),
                "device": self.device,
                "hardware": describe_hardware(resolve_device(self.device)),
                "torch": torch.__version__,
                "python": platform.python_version(), "threads": torch.get_num_threads(),
                "wall_s": round(time.perf_counter() - self.started, 1), **extra}

    def write_table(self, df: pd.DataFrame, name: str, **extra) -> Path:
        path = write_table(df, name, self.out_dir, self.provenance(**extra))
        self.written.append(path)
        return path

    def figure_path(self, name: str) -> Path:
        path = figure_path(name, self.out_dir)
        self.written.append(path)
        return path

    def finish(self) -> Path:
        """Rebuild figures/index.html and say what was written."""
        index = build_index(self.out_dir)
        print(f"{self.notebook} ({self.profile}) finished in "
              f"{time.perf_counter() - self.started:.1f} s; wrote:")
        for p in dict.fromkeys([*self.written, index]):
            print(f"  {p}")
        return index
