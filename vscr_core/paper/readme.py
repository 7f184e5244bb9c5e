"""The README's generated sections, each between its two marker comments: the results that
`make reproduce` writes (`results_section`, from the tables under results/) and the study's
progress (vscr_core.paper.progress.readme_section)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from vscr_core.files import atomic_write_bytes
from vscr_core.paper import reported
from vscr_core.paper.claims import EQUIVALENCE_MARGIN, resolution_statement, tested
from vscr_core.paper.results import markdown_table, read_table, table_path
from vscr_core.paper.study import ID_LOSS_FRACTION, PLATEAU_POINTS
from vscr_core.runtime import describe_hardware

RESULTS_START = ("<!-- results: written by `make reproduce` "
                 "(vscr_core.paper.readme.results_section) -->")
RESULTS_END = "<!-- end of results -->"


def update_readme(readme: Path, section: str, start: str, end: str) -> None:
    """Replace the text between the markers `start` and `end` in `readme` (atomically)."""
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme} lacks the markers {start!r} ... {end!r}")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    atomic_write_bytes(readme, f"{before}{start}\n\n{section}\n\n{end}{after}".encode())


def _pm(df: pd.DataFrame, k: str) -> list[str]:
    std = df[f"{k}_measured_std"]
    return [f"{m:.2f}" + ("" if pd.isna(s) else f" ± {s:.2f}")
            for m, s in zip(df[f"{k}_measured"], std)]


def results_section(out_dir=None, reproduce_minutes: float | None = None) -> str:
    """The README's results: Tables 4, 2 and 5 (measured beside reported) and the claims with
    their intervals, read from the tables under out_dir; then, for the converged study, how its
    models trained and how to rerun it (`reproduce_minutes`: the wall time of the
    `make reproduce` that wrote it)."""
    t4, meta = read_table("table4_variants", out_dir)
    t2, meta2 = read_table("table2_branch_ablation", out_dir)
    t5, _ = read_table("table5_uav_test", out_dir)
    claims, _ = read_table("claims", out_dir)
    split = meta.get("split", "val")
    head = f"Last run: profile `{meta['profile']}`, commit `{meta['commit'][:12]}`."
    table4 = pd.DataFrame({f"Table 4 ({split} split)": t4["label"], "seeds": t4["seeds"],
                           "rank-1 measured": _pm(t4, "rank1"), "mAP measured": _pm(t4, "mAP"),
                           "rank-1 reported": t4["rank1_reported"],
                           "mAP reported": t4["mAP_reported"]})
    table2 = pd.DataFrame({f"Table 2 ({meta2.get('split', 'val')} split)": t2["label"],
                           "seeds": t2["seeds"], "rank-1 measured": _pm(t2, "rank1"),
                           "mAP measured": _pm(t2, "mAP"),
                           "rank-1 reported": t2["rank1_reported"],
                           "mAP reported": t2["mAP_reported"]})
    rows5 = t5[t5["source"].isin(["measured"]) | t5["source"].str.startswith("chance (exact")]
    table5 = rows5[["method", "source", "rank1", "rank5", "rank10", "mAP"]].round(2)
    chance = (f"Chance on the {split} split: rank-1 {t4['rank1_chance'].iloc[0]:.2f} %, "
              f"mAP {t4['mAP_chance'].iloc[0]:.2f} %. Reported: the paper's UAV-VeID numbers; "
              f"measured: this project's synthetic set.")
    return "\n\n".join([
        head, markdown_table(table4), chance, markdown_table(table2),
        "Test split (Table 5; the paper's VSCR: {} / {} / {} on UAV-VeID test):".format(
            *reported.TABLE5[-1][1:]),
        markdown_table(table5),
        f"The paper's claims on these runs (`results/claims.csv`, notebook 09): measured "
        f"difference B - A in points with its 95 % interval over seeds (paired by seed where "
        f"both ran the same seeds), the verdict the interval supports (a gain needs the interval "
        f"above 0; \"adds little\" needs it inside ±{EQUIVALENCE_MARGIN:g}; one seed is "
        f"inconclusive) and whether it survives Holm's correction over the {tested(claims)} "
        f"tested claims:",
        markdown_table(claims),
        *_converged_section(out_dir),
        resolution_statement(read_table("table4_resolution", out_dir)[0]),
        *_study_section(out_dir, reproduce_minutes),
    ])


def _study_section(out_dir=None, reproduce_minutes: float | None = None) -> list[str]:
    """How the study's models were trained and how to rerun it: training hours by hardware,
    convergence, the commands, and this `make reproduce`'s own wall time. Nothing for a profile
    without a training summary (quick, smoke)."""
    if not table_path("training_summary", out_dir).is_file():
        return []
    runs = read_table("training_summary", out_dir)[0]
    hours = runs.groupby("hardware", sort=False)[["train_hours_at_median_speed",
                                                   "train_hours"]].sum()
    failed = runs.loc[~runs["converged"].astype(bool), "run"]
    lines = [
        f"The {len(runs)} study runs behind Tables 2-4 and Fig. 8 (`results/training_summary.csv`) "
        f"trained for {runs['train_hours_at_median_speed'].sum():.1f} h at each run's median "
        f"epoch speed ({runs['train_hours'].sum():.1f} h as ran, which counts the study's "
        f"pauses), by the hardware their logs name: " + "; ".join(
            f"{hw}: {h['train_hours_at_median_speed']:.1f} h" for hw, h in hours.iterrows())
        + f". {len(runs) - len(failed)} of them met the convergence rule (every branch's ID loss "
        f"at most {ID_LOSS_FRACTION:g} ln(training identities), validation rank-1 rising at most "
        f"{PLATEAU_POINTS:g} point over the last fifth)"
        + (f"; not converged: {', '.join(f'`{r}`' for r in failed)}." if len(failed) else ".")
        + " The progress section above adds the λ3 sweep and the runs an extension retired.",
        "To rerun it: `.venv/bin/python -m vscr_core.paper.study --profile cpu` trains every run "
        "that is not cached under `results/runs/` (it can be stopped and restarted), then "
        "`make reproduce PROFILE=cpu` executes the notebooks and rewrites this section."]
    if reproduce_minutes is not None:
        lines[-1] += (f" The `make reproduce PROFILE=cpu` that wrote this section took "
                      f"{reproduce_minutes:.0f} min on {describe_hardware(torch.device('cpu'))}, "
                      f"including the training of any run it did not find cached.")
    return lines


def _converged_section(out_dir=None) -> list[str]:
    """The README's secondary reading (converged_reading, as notebook 09 wrote it), where some
    claim lost a run to the convergence rule; nothing otherwise."""
    if not table_path("claims_converged_runs", out_dir).is_file():
        return []
    table = read_table("claims_converged_runs", out_dir)[0]
    if not table["left_out"].fillna("").astype(bool).any():
        return []
    return ["Secondary reading (`results/claims_converged_runs.csv`), fixed before any run of "
            "Table 4's seeds 3 and 4 had finished: the same paired claims without the runs that "
            "failed the convergence rule, each over the seeds where both of its runs are left. "
            "The table above stays the primary reading.", markdown_table(table)]


__all__ = ["RESULTS_END", "RESULTS_START", "results_section", "update_readme"]
