"""How far the converged study has got: `python -m vscr_core.paper.progress` (trains nothing).

For every run of the study's queue it reads the run folder: finished, training (a partial log),
diverged or queued; the hours of training spent, and the hours left at the speed the finished
runs logged. The claims of Tables 2-4 (claims.TABLE_CLAIMS, Table 4's first), and Fig. 8's from
the distractor curves the study keeps, get their paired differences over the seeds finished so
far.
It refreshes the study's tables (study.write_tables), writes results/study_progress.csv and
the README's study-progress section, and prints the same text.

The study's seeds were fixed before it ran (the profile's five); its verdicts are read when they
have all finished. An interval over fewer seeds shows how the study is going, nothing more:
reading verdicts as seeds arrive and stopping at the first good one would overstate them.
"""

from __future__ import annotations

import argparse
import io
import json
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from vscr_core.config import Config, Profile, profile_settings
from vscr_core.experiments import RUNS_DIR, metrics_path, run_dir, shorter_run
from vscr_core.files import REPO_ROOT, git_commit
from vscr_core.paper import claims, comparison, distractors, reported, study
from vscr_core.paper.readme import update_readme
from vscr_core.paper.results import figure_path, markdown_table, write_table
from vscr_core.paper.variants import scheduled_variant
from vscr_core.runtime import describe_hardware
from vscr_core.train import DIVERGED_NAME, load_data

FINISHED, TRAINING, DIVERGED, QUEUED = "finished", "training", "diverged", "queued"
PROGRESS_COLUMNS = ["what", "variant", "seed", "run", "state", "epochs_done", "epochs",
                    "hours_spent", "hours_at_median_speed", "hours_left", "hardware", "split",
                    "rank1", "mAP", "converged"]
README_START = ("<!-- study progress: written by `python -m vscr_core.paper.progress` "
                "(vscr_core.paper.progress.readme_section) -->")
README_END = "<!-- end of study progress -->"
SO_FAR_COLUMNS = ["claim", "source", "n_seeds", "measured", "ci_low", "ci_high", "margin",
                  "verdict", "reported", "seeds_for_target"]


def _branches(cfg: Config) -> int:
    return len(cfg.model.dilations)


def speed_model(finished: list[tuple[Config, pd.DataFrame]],
                hardware: str | None = None) -> Callable[[int], float] | None:
    """Seconds per training image as a function of the number of res5 branches: the least-squares
    line through each finished run's median logged seconds per image (the median leaves out
    epochs slowed by other work on the machine); a constant with one branch count seen; None
    with no finished run. Only the runs trained on `hardware` count when there are any: another
    CPU's speed says little about this one's (AMX's bf16 doubled the study's speed)."""
    here = [(cfg, log) for cfg, log in finished if study.trained_on(log) == hardware]
    finished = here or finished
    if not finished:
        return None
    x = np.array([_branches(cfg) for cfg, _ in finished], dtype=float)
    y = np.array([1.0 / float(np.median(log["images_per_s"])) for _, log in finished])
    if len(set(x)) < 2:
        return lambda branches: float(y.mean())
    slope, intercept = np.polyfit(x, y, 1)
    return lambda branches: float(intercept + slope * branches)


def _state(cfg: Config, protocol: dict, log: pd.DataFrame | None, runs_dir) -> str:
    if (run_dir(cfg, runs_dir) / DIVERGED_NAME).exists():
        return DIVERGED
    if log is None:
        return QUEUED
    done = int(log["epoch"].iloc[-1]) == cfg.train.epochs
    return FINISHED if done and metrics_path(cfg, protocol, runs_dir=runs_dir).exists() \
        else TRAINING


def _continues_from(cfg: Config, runs_dir) -> int:
    """The epochs of the run `cfg` would continue (experiments.shorter_run); 0 if none."""
    source = shorter_run(cfg, runs_dir)
    return 0 if source is None else int(pd.read_csv(source / "log.csv")["epoch"].iloc[-1])


def progress_table(settings: Profile, seeds=None, runs_dir=None) -> pd.DataFrame:
    """One row per run of the study's queue (PROGRESS_COLUMNS; the pilot, which is Table 4's
    baseline of seed 0, appears once, as Table 4's). rank1 and mAP (%) are the run's metrics on
    its study split (test; validation for the lambda_3 sweep), converged the study's rule."""
    entries, finished = [], []
    for what, cfg, protocol in study.queue(settings, seeds):
        path = run_dir(cfg, runs_dir) / "log.csv"
        log = pd.read_csv(path) if path.exists() and path.stat().st_size else None
        if log is not None and log.empty:
            log = None
        state = _state(cfg, protocol, log, runs_dir)
        entries.append((what, cfg, protocol, log, state))
        if state == FINISHED:
            finished.append((cfg, log))
    seconds_per_image = speed_model(finished, describe_hardware(torch.device("cpu")))
    ds = load_data(settings.config)  # the study's runs all train on the profile's data set
    rows = []
    for what, cfg, protocol, log, state in entries:
        epochs_done = 0 if log is None else int(log["epoch"].iloc[-1])
        # a queued run that continues a shorter one starts at that run's last epoch
        start = _continues_from(cfg, runs_dir) if state == QUEUED else epochs_done
        left = cfg.train.epochs - start if state in (TRAINING, QUEUED) else 0
        images = study.epoch_images(cfg, ds)
        row = {"what": what, "variant": cfg.name.split("-")[1], "seed": cfg.train.seed,
               "run": run_dir(cfg, runs_dir).name, "state": state, "epochs_done": epochs_done,
               "epochs": cfg.train.epochs,
               "hours_spent": 0.0 if log is None else study.train_seconds(cfg, ds, log) / 3600,
               "hours_at_median_speed": 0.0 if log is None
               else study.median_speed_seconds(epochs_done, images, log) / 3600,
               "hours_left": np.nan if seconds_per_image is None
               else left * images * seconds_per_image(_branches(cfg)) / 3600,
               "hardware": None if log is None else study.trained_on(log),
               "split": protocol["split"], "rank1": np.nan, "mAP": np.nan, "converged": None}
        if state == FINISHED:
            m = json.loads(metrics_path(cfg, protocol, runs_dir=runs_dir).read_text())
            # unrounded: Table 4's intervals so far are computed from these
            row.update(rank1=round(100 * m["rank1"], 6), mAP=round(100 * m["mAP"], 6),
                       converged=study.convergence(cfg, runs_dir)["converged"])
        rows.append(row)
    table = pd.DataFrame(rows, columns=PROGRESS_COLUMNS)
    return table.drop_duplicates("run", keep="last").reset_index(drop=True)


class Hours(NamedTuple):
    as_ran: float  # wall time of the training steps: a paused study's stop counts too
    at_median_speed: float  # each epoch at its record's median speed


def recorded_hours(settings: Profile, runs_dir=None) -> Hours:
    """Training hours of every record of the profile in `runs_dir` (results/runs): the study's
    runs, the lambda_3 sweep's and those an extension retired, each epoch once (a continued
    run's log repeats the epochs of the run it continued). What the study has cost."""
    ds = load_data(settings.config)  # all of the profile's runs train on its data set
    seen, as_ran, at_median = set(), 0.0, 0.0
    for path in sorted(Path(runs_dir or RUNS_DIR).glob(f"{settings.name}-*/log.csv")):
        cfg = Config.from_dict(json.loads((path.parent / "config.json").read_text()))
        text = path.read_text()
        log = pd.read_csv(io.StringIO(text))
        # an epoch is its row's text: a continued run writes its parent's rows unchanged
        keys = [(cfg.name, line) for line in text.splitlines()[1:]]
        new = [key not in seen for key in keys]
        seen.update(keys)
        as_ran += study.train_seconds(cfg, ds, log[new])
        at_median += study.median_speed_seconds(sum(new), study.epoch_images(cfg, ds), log)
    return Hours(as_ran / 3600, at_median / 3600)


def _claim_so_far(claim: claims.Claim, a: pd.Series, b: pd.Series, paper: float | None) -> dict:
    """B - A over the seeds both have (Series indexed by seed), paired, with its 95 % interval,
    the verdict those seeds support, the seeds that would reach the target half width, and each
    seed's difference."""
    both = sorted(set(a.index) & set(b.index))
    a, b = a.loc[both], b.loc[both]
    iv = claims.difference_interval(a, b)
    row = claims.claim_row(claim, iv, paper)
    return {**{k: row[k] for k in SO_FAR_COLUMNS if k in row},
            "seeds_for_target": claims.resolution_row(claim, iv)["seeds_for_target"],
            "differences": (b - a).tolist()}


def _so_far_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[*SO_FAR_COLUMNS, "differences"]).astype(
        {"seeds_for_target": "Int64"})


def _finished_study(table: pd.DataFrame) -> pd.DataFrame:
    """The finished runs of Tables 2-4 (the lambda_3 sweep is scored on validation: left out)."""
    return table[(table["what"] != "mscl sweep") & (table["state"] == FINISHED)]


def tables_so_far(table: pd.DataFrame) -> pd.DataFrame:
    """The claims of Tables 2-4 (claims.TABLE_CLAIMS; Table 4's, the main ones, first) that have
    at least one seed where both variants have finished: B - A in test rank-1 points, paired by
    seed, with its 95 % interval, the verdict those seeds support, the paper's difference
    (reported, on UAV-VeID) and the seeds that would reach the target half width."""
    done = _finished_study(table)
    rows = []
    for name, a, b, claim in sorted(claims.TABLE_CLAIMS, key=lambda c: c[3].source[:7],
                                    reverse=True):
        sa, sb = claims.per_seed(done, a), claims.per_seed(done, b)
        if not set(sa.index) & set(sb.index):
            continue
        paper = reported.TABLE2 if name == "table2_runs" else reported.TABLE4
        rows.append(_claim_so_far(claim, sa, sb,
                                  paper[b]["uav_veid"][0] - paper[a]["uav_veid"][0]))
    return _so_far_frame(rows)


def fig8_so_far(settings: Profile, table: pd.DataFrame, runs_dir=None) -> pd.DataFrame:
    """Fig. 8's claim over the seeds whose baseline and VSCR have finished and met the
    distractors (study.fig8_curves keeps each curve in its run folder): the change of test rank-1
    from no distractors to all of them (claims.distractor_change), VSCR's minus the baseline's,
    paired by seed. One row with tables_so_far's columns; the paper gives no such difference."""
    ds = comparison.uav_test_split(settings.config, settings.fig8_distractors)
    counts = distractors.distractor_counts(len(ds.distractors))  # notebook 05's
    name = distractors.distractor_curve_name(ds, counts)
    done = _finished_study(table)
    done = done[done["variant"].isin(comparison.MODELS)]
    points = []
    for r in done.itertuples():
        cfg = scheduled_variant(settings, r.variant, r.seed)
        path = comparison.kept_result_path(cfg, name, runs_dir)
        if path.is_file():
            points += [{"variant": r.variant, "seed": r.seed, "distractors": int(c),
                        "rank1": 100 * m["rank1"]} for c, m in json.loads(path.read_text()).items()]
    change = claims.distractor_change(pd.DataFrame(
        points, columns=["variant", "seed", "distractors", "rank1"]))
    a, b = comparison.MODELS
    row = _claim_so_far(claims.fig8_claim(max(counts)), claims.per_seed(change, a, "change"),
                        claims.per_seed(change, b, "change"), None)
    return _so_far_frame([row])


def plot_claims_so_far(so_far: pd.DataFrame, path) -> Path:
    """Per claim: each seed's paired difference (dots), their mean with its 95 % interval (from
    two seeds on), the paper's difference where it gives one (reported, UAV-VeID), zero, and
    the equivalence margin of an "adds little" claim (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from vscr_core.files import save_figure

    fig = Figure(figsize=(11, 1.6 + 0.56 * len(so_far)), layout="constrained")
    ax = fig.subplots()
    labelled = set()

    def once(label: str) -> str | None:  # one legend entry per kind of mark
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for y, row in enumerate(so_far.itertuples()):
        if pd.notna(row.margin):
            ax.add_patch(Rectangle((-row.margin, y - 0.4), 2 * row.margin, 0.8, color="0.88",
                                   zorder=0, label=once("equivalence margin (adds little)")))
        if row.differences:
            ax.plot(row.differences, [y] * len(row.differences), "o", color="tab:blue",
                    alpha=0.6, ms=5, label=once("measured: one seed's difference"))
        if pd.notna(row.ci_low):
            ax.errorbar(row.measured, y + 0.22, xerr=[[row.measured - row.ci_low],
                                                      [row.ci_high - row.measured]],
                        fmt="s", color="black", capsize=3, ms=5,
                        label=once("measured: mean and 95 % interval"))
        if pd.notna(row.reported):
            ax.plot(row.reported, y - 0.22, "D", mfc="none", color="tab:red", ms=6,
                    label=once("reported (paper, UAV-VeID)"))
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(so_far)), [f"{textwrap.fill(c, 60)}\n({s}, {n} seed(s))" for c, s, n in
                                       zip(so_far["claim"], so_far["source"], so_far["n_seeds"])],
                  fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="test rank-1 difference B - A (points; Fig. 8: VSCR's change with the "
                  "distractors minus the baseline's)",
           title="The study so far: paired differences over the seeds finished\n(measured: "
                 "synthetic test split)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return save_figure(fig, path)


def failed_rule(table: pd.DataFrame) -> pd.Series:
    """Which rows of progress_table finished and failed the convergence rule (the rule is
    study.convergence; unfinished rows have no verdict and are not counted)."""
    return (table["state"] == FINISHED) & table["converged"].eq(False)


def claims_so_far(settings: Profile, table: pd.DataFrame, runs_dir=None) -> pd.DataFrame:
    """tables_so_far's rows, then fig8_so_far's; each claim pairs the seeds where both of its
    runs are in `table` (so the table without some runs gives the claims without them)."""
    return pd.concat([tables_so_far(table), fig8_so_far(settings, table, runs_dir)],
                     ignore_index=True)


def readme_section(table: pd.DataFrame, so_far: pd.DataFrame, settings: Profile,
                   unconverged: dict[int, list[list[str]]] | None = None,
                   converged_only: pd.DataFrame | None = None,
                   all_hours: Hours | None = None) -> str:
    """The README's study progress, in words and tables, from progress_table and claims_so_far;
    `unconverged` (study.extension_rounds) says why seeds were extended,
    `converged_only` is claims_so_far without the runs that failed the rule (None: none did)
    and `all_hours` is recorded_hours."""
    study_rows = table[table["what"] != "mscl sweep"]
    finished = _finished_study(table)
    open_rows = study_rows[study_rows["state"] != FINISHED]
    n_conv = int(finished["converged"].astype(bool).sum())
    left = open_rows["hours_left"].sum()
    queued = ", ".join(f"{what}: {n}" for what, n in
                       open_rows.groupby("what", sort=False).size().items())
    lines = [f"{len(finished)} of {len(study_rows)} study runs have finished, {n_conv} of them "
             f"converged by the rule; {finished['hours_spent'].sum():.1f} h of training so far "
             f"as ran (`hours_spent`), {finished['hours_at_median_speed'].sum():.1f} h at each "
             f"run's median epoch speed, what an otherwise idle machine would have needed. "
             + (f"Still to run: {queued}; about {left:.1f} h at the median speed the finished "
                f"runs logged, those trained on this machine's hardware where there are any "
                f"(`hours_left`, `results/study_progress.csv`)." if len(open_rows) else
                "Every run of the study has finished.")]
    by_hardware = finished.groupby("hardware", sort=False)[["hours_spent",
                                                            "hours_at_median_speed"]].sum()
    lines.append("Training hours as ran and at median speed, by the hardware the runs logged "
                 "(`hardware` in `results/training_summary.csv`): " + "; ".join(
                     f"{hw}: {h['hours_spent']:.1f} h and {h['hours_at_median_speed']:.1f} h"
                     for hw, h in by_hardware.iterrows()) + ".")
    if all_hours is not None:
        lines[-1] += (f" Every training record under `results/runs/`, the λ3 sweep's and the "
                      f"runs an extension retired included, each epoch once: "
                      f"{all_hours.at_median_speed:.1f} h at each record's median speed, "
                      f"{all_hours.as_ran:.1f} h as ran.")
    lines.append("Hours as ran are the wall time of the logged epochs, so they include every "
                 "stop of the study, mostly pauses while the test suite and the notebooks ran "
                 "on a clean clone to be timed. The hours at median speed leave those out and "
                 "are the study's machine time.")
    for seed, rounds in sorted((unconverged or {}).items()):
        # the seed's schedule after k extensions, as the profile would train it
        lengths = [scheduled_variant(replace(settings, extensions={seed: k}), "baseline",
                                     seed).train.epochs for k in range(len(rounds) + 1)]
        failures = "; ".join(
            f"at {'the scheduled ' if k == 0 else ''}{lengths[k]} epochs for "
            + ", ".join(f"`{r}`" for r in runs) for k, runs in enumerate(rounds))
        extended = settings.extensions.get(seed, 0) == len(rounds)
        what = (f"every run of the seed trains {lengths[-1]} epochs, continuing the shorter run "
                f"where its checkpoint is at hand" if extended else
                f"the seed's runs are still to be extended to {lengths[-1]} epochs")
        lines.append(f"Seed {seed}: the convergence rule failed {failures}. Under the extension "
                     f"rule (`study.extension_rounds`), {what}. The shorter runs' records stay "
                     f"in `results/runs/`.")
        again = study_rows[failed_rule(study_rows) & (study_rows["seed"] == seed)]
        if extended and len(again):
            lines[-1] += (f" At {lengths[-1]} epochs the rule failed for "
                          f"{', '.join(again['variant'])}, reported as not converged.")
    shown = study_rows[study_rows["state"] != QUEUED]
    runs = pd.DataFrame({
        "table": shown["what"], "variant": shown["variant"], "seed": shown["seed"],
        "state": [s if s != TRAINING else f"training ({e}/{n} epochs)" for s, e, n in
                  zip(shown["state"], shown["epochs_done"], shown["epochs"])],
        "converged": shown["converged"].map({True: "yes", False: "no"}),
        "test rank-1 (%)": shown["rank1"].round(2), "test mAP (%)": shown["mAP"].round(2),
        "hours as ran": shown["hours_spent"].round(2),
        "hours at median speed": shown["hours_at_median_speed"].round(2)})
    lines.append(markdown_table(runs))
    n_seeds, n_table2 = len(settings.seeds), len(settings.table2_seed_list())
    lines.append(
        f"The study so far: test rank-1 difference B - A in points, paired by seed, with its "
        f"95 % interval (Student's t); for Fig. 8, the change of rank-1 from no distractors to "
        f"all of them, VSCR's minus the baseline's, from the curves the study keeps in each "
        f"seed's run folders. The study's {n_seeds} seeds were fixed before it ran and its "
        f"verdicts are read at {n_seeds} (Table 2's rows get the first {n_table2}, what the "
        f"budget allowed); an interval from fewer seeds only shows how it is going. Margin: an "
        f"\"adds little\" claim is reproduced only when its whole interval lies within "
        f"±margin. Reported: the paper's difference on UAV-VeID; measured: the synthetic test "
        f"split. Seeds for ±{claims.TARGET_HALF_WIDTH:g}: how many paired seeds would bring the "
        f"interval to ±{claims.TARGET_HALF_WIDTH:g} points at the spread seen so far.")
    lines.append("![The study so far](figures/study_progress.png)")
    lines.append(_so_far_markdown(so_far))
    if converged_only is not None:
        lines.append(
            "Secondary reading, fixed before any run of Table 4's seeds 3 and 4 had finished: the "
            "same claims without the runs that failed the convergence rule (converged: no "
            "above), each over the seeds where both of its runs are left. The table above stays "
            "the primary reading.")
        lines.append(_so_far_markdown(converged_only))
    return "\n\n".join(lines)


def _so_far_markdown(so_far: pd.DataFrame) -> str:
    return markdown_table(pd.DataFrame({
        "claim (B vs A)": so_far["claim"], "source": so_far["source"],
        "seeds": so_far["n_seeds"], "measured": so_far["measured"],
        "95 % interval": [f"[{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else "none (under two seeds)"
                          for lo, hi in zip(so_far["ci_low"], so_far["ci_high"])],
        "margin": so_far["margin"].map(lambda m: "" if pd.isna(m) else f"±{m:g}"),
        "verdict at these seeds": so_far["verdict"], "reported": so_far["reported"],
        f"seeds for ±{claims.TARGET_HALF_WIDTH:g}": so_far["seeds_for_target"]}))


def write_report(settings: Profile, seeds=None, readme=REPO_ROOT / "README.md") -> str:
    """study.write_tables, then results/study_progress.csv, figures/study_progress.png and the
    README's section; returns the section's text."""
    study.write_tables(settings, seeds)
    table = progress_table(settings, seeds)
    write_table(table, "study_progress", None, {"commit": git_commit(),
                                                "profile": settings.config.name,
                                                "written_by": "vscr_core.paper.progress"})
    so_far = claims_so_far(settings, table)
    plot_claims_so_far(so_far, figure_path("study_progress", None))
    unconverged = study.extension_rounds(
        settings, load_data(settings.config).num_train_pids)
    failed = failed_rule(table)
    converged_only = claims_so_far(settings, table[~failed]) if failed.any() else None
    section = readme_section(table, so_far, settings, unconverged, converged_only,
                             recorded_hours(settings))
    if readme is not None:
        update_readme(readme, section, README_START, README_END)
    return section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vscr_core.paper.progress",
                                     description="Report how far the converged study has got "
                                                 "(trains nothing).")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the profile's seeds")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args(argv)
    settings = profile_settings(args.profile)
    print(write_report(settings, args.seeds, None if args.no_readme else REPO_ROOT / "README.md"))


if __name__ == "__main__":
    main()
