"""Fig. 10: a t-SNE of the test features of 20 identities, baseline against VSCR, with the
separability measured in feature space rather than on the 2-D picture (leave-one-out 1-NN
identity accuracy, silhouette, same-id / different-id distance ratio; Euclidean, the
retrieval metric). Features are those the evaluation ranks (experiments.features: bf16
autocast on the CPU). `tsne_features` computes, `tsne_table` turns the result into the
notebook's CSV, `plot_tsne` draws and `tsne_statement` says in words what the table measured.

    res = tsne_features(models, ds, run.config, num_ids=20, seed=run.seeds[0])
    plot_tsne(res, run.figure_path("fig10_tsne"))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vscr_core.config import Config
from vscr_core.data.types import ReIDDataset, Sample
from vscr_core.files import save_figure
from vscr_core.paper.explain.shared import LABELS, MODELS


def pick_identities(samples: list[Sample], n: int, seed: int) -> list[int]:
    """n identities (all, if fewer) drawn with `seed` among those with at least 2 images."""
    if n < 2:
        raise ValueError(f"t-SNE needs at least 2 identities, got n={n}")
    counts: dict[int, int] = {}
    for s in samples:
        counts[s.pid] = counts.get(s.pid, 0) + 1
    pids = sorted(p for p, c in counts.items() if c >= 2)
    if len(pids) < 2:
        raise ValueError(f"t-SNE needs 2 identities with 2+ images; found {len(pids)}")
    if len(pids) <= n:
        return pids
    return sorted(int(p) for p in np.random.default_rng(seed).choice(pids, n, replace=False))


def separability(feats, pids) -> dict:
    """How well identities separate in feature space (Euclidean, the retrieval metric):
    leave-one-out 1-NN identity accuracy, silhouette score, and the ratio of the mean distance
    between images of one identity to the mean distance between images of different ones."""
    from sklearn.metrics import silhouette_score

    x = np.asarray(feats, dtype=np.float64)
    y = np.asarray(pids)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features (N, D) and N labels expected; got {x.shape} and {y.shape}")
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0))  # (N, N)
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(x), dtype=bool)
    nn = np.where(off, d, np.inf).argmin(1)
    return {"knn1_accuracy": float((y[nn] == y).mean()),
            "silhouette": float(silhouette_score(x, y, metric="euclidean")),
            "intra_inter_ratio": float(d[same & off].mean() / d[~same].mean())}


@dataclass
class TsneResult:
    samples: list[Sample]
    pids: np.ndarray  # (N,)
    is_gallery: np.ndarray  # (N,) bool
    features: dict[str, np.ndarray]  # model -> (N, D)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # model -> (N, 2)
    kl: dict[str, float] = field(default_factory=dict)  # t-SNE's final KL divergence
    perplexity: float = 0.0


def tsne_features(models: dict, ds: ReIDDataset, cfg: Config, num_ids: int = 20, seed: int = 0,
                  progress: bool = False) -> TsneResult:
    """Fig. 10's data: test images (query and gallery) of num_ids random identities, their
    features under every model, and a 2-D t-SNE of each (seeded; perplexity min(30, (N-1)/3);
    exact gradients up to 1000 images, faster than Barnes-Hut at this size)."""
    from sklearn.manifold import TSNE

    from vscr_core.experiments import features

    pool = ds.query + ds.gallery
    keep = set(pick_identities(pool, num_ids, seed))
    samples = [s for s in pool if s.pid in keep]
    gallery = {s.path for s in ds.gallery}
    res = TsneResult(samples, np.array([s.pid for s in samples]),
                     np.array([s.path in gallery for s in samples]), {})
    res.perplexity = float(min(30.0, (len(samples) - 1) / 3))
    for name, model in models.items():
        f = features(model, samples, cfg, progress=progress).numpy()  # (N, D)
        tsne = TSNE(n_components=2, perplexity=res.perplexity, init="pca", random_state=seed,
                    method="exact" if len(samples) <= 1000 else "barnes_hut")
        res.features[name] = f
        res.embeddings[name] = tsne.fit_transform(f.astype(np.float64))
        res.kl[name] = float(tsne.kl_divergence_)
    return res


def tsne_table(res: TsneResult) -> pd.DataFrame:
    """One row per model: the identities and images drawn, and the separability of the
    features (not of the 2-D embedding)."""
    rows = []
    for name, f in res.features.items():
        rows.append({"model": name, "identities": len(set(res.pids.tolist())),
                     "images": len(res.pids), "feature_dim": f.shape[1],
                     **{k: round(v, 4) for k, v in separability(f, res.pids).items()},
                     "tsne_perplexity": round(res.perplexity, 2),
                     "tsne_kl": round(res.kl[name], 4),
                     "pids": " ".join(map(str, sorted(set(res.pids.tolist()))))})
    return pd.DataFrame(rows)


def plot_tsne(res: TsneResult, out_png, title: str | None = None) -> Path:
    """Fig. 10: one panel per model, one colour per identity; stars are gallery images."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    names = list(res.embeddings)
    ids = sorted(set(res.pids.tolist()))
    cmap = colormaps["tab20"]
    fig = Figure(figsize=(6.2 * len(names), 6.0), dpi=110, layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name, tag in zip(axes, names, "abcdefgh"):
        e = res.embeddings[name]
        for k, pid in enumerate(ids):
            colour = cmap(k % 20) if len(ids) <= 20 else colormaps["hsv"](k / len(ids))
            for gal, marker, size in ((False, "o", 28), (True, "*", 120)):
                sel = (res.pids == pid) & (res.is_gallery == gal)
                ax.scatter(e[sel, 0], e[sel, 1], s=size, marker=marker, color=colour,
                           edgecolors="black" if gal else "none", linewidths=0.6,
                           label=str(pid) if not gal else None)
        ax.set_title(f"({tag}) {LABELS.get(name, name)}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(title="identity", fontsize=7, title_fontsize=8, loc="center left",
                    bbox_to_anchor=(1.0, 0.5), markerscale=1.2)
    fig.suptitle(title or f"Fig. 10: t-SNE of test features, {len(ids)} identities, "
                          f"{len(res.pids)} images (stars: gallery images)", fontsize=11)
    return save_figure(fig, out_png)


def tsne_statement(table: pd.DataFrame) -> str:
    """Fig. 10's measured separability in words, from the table."""
    r0 = table.iloc[0]
    lines = [f"Features of {r0['identities']} test identities ({r0['images']} images), measured "
             "in feature space (Euclidean), not on the 2-D picture:"]
    for r in table.itertuples():
        lines.append(f"  {LABELS.get(r.model, r.model)}: leave-one-out 1-NN identity accuracy "
                     f"{r.knn1_accuracy:.3f}, silhouette {r.silhouette:.3f}, mean same-id / "
                     f"different-id distance {r.intra_inter_ratio:.3f}")
    by = table.set_index("model")
    if set(MODELS) <= set(by.index):
        b, v = by.loc["baseline"], by.loc["vscr"]
        closer = "closer together" if v["intra_inter_ratio"] < b["intra_inter_ratio"] \
            else "no closer together"
        lines.append(f"Relative to other identities, VSCR's images of one vehicle are {closer} "
                     f"than the baseline's (ratio {v['intra_inter_ratio']:.3f} vs "
                     f"{b['intra_inter_ratio']:.3f}); 1-NN accuracy changes by "
                     f"{v['knn1_accuracy'] - b['knn1_accuracy']:+.3f}.")
    return "\n".join(lines)


__all__ = [
    "TsneResult", "pick_identities", "plot_tsne", "separability", "tsne_features",
    "tsne_statement", "tsne_table",
]
