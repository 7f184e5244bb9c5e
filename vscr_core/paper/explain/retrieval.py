"""Figs. 11 and 12: top-10 retrieval rows, baseline against VSCR. Features are those the
evaluation ranks (experiments.features: bf16 autocast on the CPU); the gallery is ranked by
exact Euclidean distance, as in the paper's inference, under the evaluation's junk rule. Fig. 11
shows random queries; Fig. 12 random ones on VeRi-776 and, elsewhere, queries where the two
models disagree at rank 1 (`fig12_selection`). `retrievals` computes, `select_queries` picks the
rows, `retrieval_table` turns them into the notebook's CSV, `plot_retrieval` draws and
`retrieval_statement` says in words what the table measured.

    res = retrievals(models, ds, run.config)
    fig11 = retrieval_table(res, select_queries(res, 4, seed, "random"), "Fig. 11")
    plot_retrieval(res, fig11, run.figure_path("fig11_retrieval"))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vscr_core.config import Config
from vscr_core.data.transforms import load_image
from vscr_core.data.types import ReIDDataset, Sample
from vscr_core.files import save_figure
from vscr_core.paper.explain.shared import LABELS, MODELS, common_root, junk_rule

BLUE, GREEN, RED = "#1f5af2", "#1ab233", "#e61f1f"  # query, true match, false match


@dataclass
class Ranking:
    """Every query's ranked gallery under one model (ties by gallery order; junk dropped)."""

    top: np.ndarray  # (Q, k) gallery indices, best first; -1 past the end of a short list
    top_dist: np.ndarray  # (Q, k) Euclidean distances
    first_true: np.ndarray  # (Q,) 1-based rank of the first true match; 0 when there is none


def rank_gallery(q_feats, g_feats, q_pids, g_pids, q_camids=None, g_camids=None,
                 junk: str = "none", k: int = 10, chunk: int = 256) -> Ranking:
    """Exact Euclidean ranking (float64) of the gallery for every query, in chunks of queries.
    junk="same_camera" drops gallery images with the query's id and camera, as the protocol."""
    if junk not in ("none", "same_camera"):
        raise ValueError(f"junk must be 'none' or 'same_camera', got {junk!r}")
    q = torch.as_tensor(np.asarray(q_feats), dtype=torch.float64)
    g = torch.as_tensor(np.asarray(g_feats), dtype=torch.float64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"features must be (Q, D) and (G, D); got {tuple(q.shape)} and "
                         f"{tuple(g.shape)}")
    qp, gp = np.asarray(q_pids), np.asarray(g_pids)
    if len(qp) != len(q) or len(gp) != len(g):
        raise ValueError(f"{len(qp)} query and {len(gp)} gallery labels for {len(q)} and "
                         f"{len(g)} features")
    if junk == "same_camera":
        if q_camids is None or g_camids is None:
            raise ValueError("junk='same_camera' needs q_camids and g_camids")
        qc, gc = np.asarray(q_camids), np.asarray(g_camids)
    k_eff = min(k, len(g))
    top = np.full((len(q), k), -1, dtype=np.int64)
    top_dist = np.full((len(q), k), np.nan)
    first = np.zeros(len(q), dtype=np.int64)
    for a in range(0, len(q), chunk):
        # (c, G) float64, by differences (not the matrix-product shortcut, whose rounding
        # could reorder near-ties)
        d = torch.cdist(q[a:a + chunk], g, compute_mode="donot_use_mm_for_euclid_dist")
        d = d.numpy()
        match = qp[a:a + chunk, None] == gp[None, :]
        keep = np.ones_like(match)
        if junk == "same_camera":
            keep = ~(match & (qc[a:a + chunk, None] == gc[None, :]))
        order = np.argsort(np.where(keep, d, np.inf), axis=1, kind="stable")  # (c, G)
        for r in range(len(order)):
            row = order[r][keep[r][order[r]]]  # junk removed, order kept
            n = min(k_eff, len(row))
            top[a + r, :n] = row[:n]
            top_dist[a + r, :n] = d[r, row[:n]]
            hits = np.flatnonzero(match[r][row])
            first[a + r] = hits[0] + 1 if len(hits) else 0
    return Ranking(top, top_dist, first)


@dataclass
class RetrievalResult:
    dataset: str
    query: list[Sample]
    gallery: list[Sample]
    rankings: dict[str, Ranking]  # model -> Ranking
    junk: str
    root: str

    def rank1(self, name: str) -> float:
        """Share of queries (with a true match) whose first result is a true match."""
        f = self.rankings[name].first_true
        return float((f[f > 0] == 1).mean())


def retrievals(models: dict, ds: ReIDDataset, cfg: Config, junk: str | None = None,
               k: int = 10, progress: bool = False) -> RetrievalResult:
    """Figs. 11-12's data: every test query's top-k under every model (the evaluation's
    features; exact Euclidean ranking; junk None: the data set's rule, see junk_rule)."""
    from vscr_core.experiments import features

    junk = junk_rule(cfg.data.dataset, ds) if junk is None else junk
    rankings = {}
    for name, model in models.items():
        qf = features(model, ds.query, cfg, progress=progress)
        gf = features(model, ds.gallery, cfg, progress=progress)
        rankings[name] = rank_gallery(qf, gf, [s.pid for s in ds.query],
                                      [s.pid for s in ds.gallery], [s.camid for s in ds.query],
                                      [s.camid for s in ds.gallery], junk=junk, k=k)
    return RetrievalResult(ds.name, list(ds.query), list(ds.gallery), rankings, junk,
                           common_root(ds.query + ds.gallery))


SELECTIONS = {
    "random": "random test queries (seeded)",
    "disagree": "queries where baseline and VSCR disagree at rank 1 (half each way where "
                "possible), seeded",
}


def fig12_selection(dataset: str) -> str:
    """How Fig. 12 picks its queries. The paper's Fig. 12 is random samples on VeRi-776: run on
    VeRi-776, so is ours (queries other than Fig. 11's). On any other data set Fig. 12 shows a
    second, documented choice: the queries where baseline and VSCR disagree at rank 1."""
    return "random" if dataset == "veri776" else "disagree"


def select_queries(res: RetrievalResult, n: int, seed: int, selection: str = "random",
                   exclude=()) -> list[tuple[int, str]]:
    """n (query index, why) pairs of distinct identities, none in `exclude`, drawn with `seed`.
    "random": among queries with a true match. "disagree": queries where exactly one of baseline
    and VSCR ranks a true match first, split evenly between the two directions where possible,
    then filled with queries that both miss at rank 1, then with random ones."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection={selection!r}; expected one of {', '.join(SELECTIONS)}")
    if n < 1:
        raise ValueError(f"number of queries must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    names = list(res.rankings)
    has_match = np.all([res.rankings[m].first_true > 0 for m in names], axis=0)
    ok = has_match.copy()
    ok[np.asarray(list(exclude), dtype=np.int64)] = False
    pids = np.array([s.pid for s in res.query])
    picked: list[tuple[int, str]] = []

    def take(candidates, m, why):
        for i in rng.permutation(np.flatnonzero(candidates)):
            if len(picked) >= m:
                return
            if pids[i] not in {pids[j] for j, _ in picked}:
                picked.append((int(i), why))

    if selection == "disagree":
        if not set(MODELS) <= set(names):
            raise ValueError(f"selection='disagree' needs models {MODELS}, got {names}")
        b = res.rankings["baseline"].first_true == 1
        v = res.rankings["vscr"].first_true == 1
        take(ok & v & ~b, (n + 1) // 2, "VSCR right, baseline wrong at rank 1")
        take(ok & b & ~v, n, "baseline right, VSCR wrong at rank 1")
        take(ok & v & ~b, n, "VSCR right, baseline wrong at rank 1")
        take(ok & ~b & ~v, n, "both wrong at rank 1 (too few disagreements)")
    take(ok, n, "random" if selection == "random" else "random (too few disagreements)")
    return picked


def _relative(paths: list[str], root: str) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


def retrieval_table(res: RetrievalResult, picked: list[tuple[int, str]],
                    figure: str = "") -> pd.DataFrame:
    """One row per shown query: its image, why it was chosen, and per model the rank of the
    first true match over the whole gallery, and the top-k shown (paths, ids, + true / - false).
    Paths are relative to the folder in `res.root` (the table's provenance names it)."""
    rows = []
    for k, (i, why) in enumerate(picked, start=1):
        q = res.query[i]
        row = {"figure": figure, "dataset": res.dataset, "query": k, "query_index": i,
               "selection": why, "query_path": os.path.relpath(q.path, res.root),
               "query_pid": q.pid, "query_camid": q.camid}
        for name, r in res.rankings.items():
            shown = [j for j in r.top[i] if j >= 0]
            row[f"{name}_first_true_rank"] = int(r.first_true[i])
            row[f"{name}_top_paths"] = ";".join(
                _relative([res.gallery[j].path for j in shown], res.root))
            row[f"{name}_top_pids"] = ";".join(str(res.gallery[j].pid) for j in shown)
            row[f"{name}_top_true"] = "".join("+" if res.gallery[j].pid == q.pid else "-"
                                              for j in shown)
        rows.append(row)
    return pd.DataFrame(rows)


def _framed(path: str, size: int, colour: str, border: int):
    """The image at `path` as a size x size PIL image inside a `colour` frame."""
    from PIL import Image

    img = Image.fromarray(load_image(path, (size, size)).permute(1, 2, 0).numpy())
    out = Image.new("RGB", (size + 2 * border, size + 2 * border), colour)
    out.paste(img, (border, border))
    return out


def plot_retrieval(res: RetrievalResult, table: pd.DataFrame, out_png, title: str = "",
                   cell: int = 72, border: int = 4, pad: int = 3) -> Path:
    """Figs. 11-12: per query a baseline row above a VSCR row, the query framed blue, then the
    top-k gallery images framed green (true match) or red (false). Drawn pixel for pixel (PIL),
    each image at cell x cell px."""
    from PIL import Image, ImageDraw, ImageFont

    names = list(res.rankings)
    shown = {n: [[j for j in res.rankings[n].top[i] if j >= 0] for i in table["query_index"]]
             for n in names}
    k = max(len(row) for rows in shown.values() for row in rows)
    side = cell + 2 * border
    step = side + pad  # frames are `pad` white pixels apart
    gap, text, head = side // 3, 120, 44  # gap between queries, label column, title band
    height = head + len(table) * (len(names) * step + gap) - gap
    width = text + (k + 1) * step + side // 4
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    if not title:
        title = (f"{table['figure'].iloc[0]}: top-{k} on {table['dataset'].iloc[0]} "
                 f"({'; '.join(sorted(set(table['selection'])))})")
    draw.text((8, 6), title, fill="black", font=font)
    draw.text((8, 24), "blue: query; green: true match; red: false match", fill="black",
              font=font)
    for qi, r in enumerate(table.itertuples()):
        q = res.query[r.query_index]
        for mi, name in enumerate(names):
            y = head + qi * (len(names) * step + gap) + mi * step
            sheet.paste(_framed(q.path, cell, BLUE, border), (text, y))
            for j, g in enumerate(res.gallery[i] for i in shown[name][qi]):
                colour = GREEN if g.pid == q.pid else RED
                sheet.paste(_framed(g.path, cell, colour, border),
                            (text + step + side // 4 + j * step, y))
            first = getattr(r, f"{name}_first_true_rank")
            draw.text((text - 8, y + side // 2), f"{LABELS.get(name, name)}\nfirst true: {first}",
                      fill="black", font=font, anchor="rm", align="right")
    return save_figure(sheet, out_png)


def retrieval_statement(table: pd.DataFrame, res: RetrievalResult | None = None) -> str:
    """A retrieval figure's measured ranks in words, from its table (and, given `res`, the
    rank-1 of both models over every test query, for context)."""
    names = [c.removesuffix("_first_true_rank") for c in table.columns
             if c.endswith("_first_true_rank")]
    fig = table["figure"].iloc[0] or "retrieval"
    lines = [f"{fig} on {table['dataset'].iloc[0]}, {len(table)} queries "
             f"({'; '.join(sorted(set(table['selection'])))}):"]
    for r in table.itertuples():
        ranks = ", ".join(f"{LABELS.get(m, m)} {getattr(r, f'{m}_first_true_rank')}"
                          for m in names)
        lines.append(f"  query {r.query} (id {r.query_pid}): first true match at rank {ranks}")
    if set(MODELS) <= set(names):
        b, v = table["baseline_first_true_rank"], table["vscr_first_true_rank"]
        lines.append(f"VSCR ranks the true match earlier on {int((v < b).sum())}, later on "
                     f"{int((v > b).sum())} and equally on {int((v == b).sum())} of these "
                     "queries.")
    if res is not None:
        overall = ", ".join(f"{LABELS.get(m, m)} {100 * res.rank1(m):.1f} %"
                            for m in res.rankings)
        lines.append(f"Over all {len(res.query)} test queries, rank-1: {overall} (a few rows "
                     "do not measure accuracy; this does).")
    return "\n".join(lines)


__all__ = [
    "SELECTIONS", "Ranking", "RetrievalResult", "fig12_selection", "plot_retrieval",
    "rank_gallery", "retrieval_statement", "retrieval_table", "retrievals", "select_queries",
]
