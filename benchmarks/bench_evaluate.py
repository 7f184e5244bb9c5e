"""Speed and memory of the evaluator, as ratios against references run in the same process.

(a) VeRi-776 size (1,678 x 11,579, 512-D, 20 cameras) against three references, each timed with
    the dense float32 distance matrix it needs: ref 1, a literal port of torchreid's
    eval_market1501 (what torchreid users run without its Cython build); ref 2, the same loop
    with vectorised AP; ref 3, fast-reid's Cython evaluate_cy, built from the fastreid wheel
    (pip download) where Cython is installed, else skipped with the reason. Time (best of 3,
    ref 1 one run), ratio to each, largest metric difference; the bare fp32 product as the share
    of rank_metrics' time that is the matrix product.
(b) UAV-VeID test + 300,000 distractors (16,850 x 302,208): exact metrics, time and peak RSS in a
    fresh subprocess, vs a faiss-cpu flat top-100 search of the same features (its own subprocess).
(c) the distractor curve over 7 counts, same features as (b), vs the time of (b).
(d) feature extraction images/s of a ResNet-50 + 512-D head, fp32 vs bf16 autocast + channels-last,
    cosine similarity of the features and the change of rank-1.

Features are random but clustered by identity, so the metrics are not trivial.
Usage: python benchmarks/bench_evaluate.py [--quick] [--only a,b,c,d] [--fastreid-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vscr_core.evaluate import distractor_curve, evaluate_uav_veid, extract_features, rank_metrics

DIM = 512


def clustered(pids: torch.Tensor, centres: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """(N, D) features: identity centre + Gaussian noise, built in slices to bound memory."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(len(pids), centres.shape[1])
    for i in range(0, len(pids), 65536):
        p = pids[i : i + 65536]
        out[i : i + len(p)] = centres[p] + noise * torch.randn(len(p), DIM, generator=g)
    return out


def centres_for(n: int, seed: int) -> torch.Tensor:
    # Identities share most of their appearance (a low-dimensional fleet), so they get confused.
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(48, DIM, generator=g) / 48**0.5
    return torch.randn(n, 48, generator=g) @ basis / DIM**0.5  # (n, D), norm about 1


def cpu_name() -> str:
    """The CPU's model name, its bf16 matrix flags, and the cores this process may use."""
    name, flags = "unknown CPU", set()
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in flags] or ["no bf16 flags"]
    return f"{name} ({', '.join(bf16)}; {len(os.sched_getaffinity(0))} cores)"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- (a) VeRi-776 size


def dense_sqdist(qf: torch.Tensor, gf: torch.Tensor) -> np.ndarray:
    """The float32 distance matrix torchreid and fast-reid rank by: |q|^2 + |g|^2 - 2 q.g."""
    d = qf.square().sum(1, keepdim=True) + gf.square().sum(1)[None]  # (Q, G)
    return d.addmm_(qf, gf.T, alpha=-2).numpy()


def torchreid_loop(distmat, qp, gp, qc, gc, max_rank=50):
    """Reference 1, a line-by-line port of torchreid's `eval_market1501` (metrics/rank.py):
    every query's row argsorted, then per query a loop body with torchreid's list comprehension
    over the whole gallery for AP. torchreid has no mINP."""
    indices = np.argsort(distmat, axis=1)
    matches = (gp[indices] == qp[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap = [], []
    for q_idx in range(len(qp)):
        order = indices[q_idx]
        keep = np.invert((gp[order] == qp[q_idx]) & (gc[order] == qc[q_idx]))
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        all_ap.append((np.asarray(tmp_cmc) * raw_cmc).sum() / num_rel)
    return np.asarray(all_cmc).astype(np.float32).mean(0), float(np.mean(all_ap)), None


def torchreid_vectorised(distmat, qp, gp, qc, gc, max_rank=50):
    """Reference 2: the same loop with AP as one vectorised cumsum (about ten times faster than
    reference 1 here), and fast-reid's mINP."""
    indices = np.argsort(distmat, axis=1)
    matches = (gp[indices] == qp[:, None]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(len(qp)):
        order = indices[i]
        keep = ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        raw = matches[i][keep]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        pos = np.where(raw == 1)[0]
        all_inp.append(cmc[pos.max()] / (pos.max() + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        all_ap.append((raw.cumsum() / (np.arange(len(raw)) + 1.0) * raw).sum() / raw.sum())
    return np.mean(all_cmc, 0), float(np.mean(all_ap)), float(np.mean(all_inp))


FASTREID = "fastreid==1.4.0"  # its wheel carries fastreid/evaluation/rank_cylib/rank_cy.pyx
_PYX = "fastreid/evaluation/rank_cylib/rank_cy.pyx"


def fastreid_cython(work: Path):
    """fast-reid's Cython `evaluate_cy`, built in `work` from the wheel of FASTREID (downloaded
    there with pip unless present): (the function, None), or (None, why it is not available)."""
    import importlib.util
    import zipfile

    so = next(work.glob("rank_cy*.so"), None)
    if so is None:
        try:
            import Cython  # noqa: F401
        except ImportError:
            return None, "Cython is not installed (pip install cython)"
        work.mkdir(parents=True, exist_ok=True)
        wheels = list(work.glob("fastreid-*.whl"))
        if not wheels:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", FASTREID, "-d", work]
            got = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            wheels = list(work.glob("fastreid-*.whl"))
            if not wheels:
                return None, f"pip download {FASTREID} failed: {got.stderr.strip()[-300:]}"
        with zipfile.ZipFile(wheels[0]) as z:
            (work / "rank_cy.pyx").write_bytes(z.read(_PYX))
        build = ("import numpy as np; from setuptools import setup, Extension; "
                 "from Cython.Build import cythonize; setup(name='rank_cy', script_args="
                 "['build_ext', '--inplace'], ext_modules=cythonize([Extension('rank_cy', "
                 "['rank_cy.pyx'], include_dirs=[np.get_include()])], quiet=True))")  # fmt: skip
        got = subprocess.run([sys.executable, "-c", build], cwd=work, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
        so = next(work.glob("rank_cy*.so"), None)
        if so is None:
            return None, f"building rank_cy.pyx failed: {got.stderr.strip()[-300:]}"
    spec = importlib.util.spec_from_file_location("rank_cy", so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate_cy, None


def timed(fn, *args, repeat: int = 1):
    """fn's output and its best wall time over `repeat` runs (the machine may be shared: the
    best run is the one least disturbed)."""
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return out, best


def bench_veri(quick: bool, fastreid_dir: Path) -> list[tuple]:
    nq, ng, nids = (600, 4000, 80) if quick else (1678, 11579, 200)
    g = torch.Generator().manual_seed(0)
    gp = torch.arange(ng) % nids
    qp = torch.randint(0, nids, (nq,), generator=g)
    centres = centres_for(nids, 1)
    qf, gf = clustered(qp, centres, 0.085, 2), clustered(gp, centres, 0.085, 3)
    qc, gc = torch.randint(0, 20, (nq,), generator=g), torch.randint(0, 20, (ng,), generator=g)
    labels = [x.numpy() for x in (qp, gp, qc, gc)]
    rank_metrics(qf[:50], gf, qp[:50], gp, qc[:50], gc)  # warm-up
    m, t_ours = timed(rank_metrics, qf, gf, qp, gp, qc, gc, repeat=3)
    size = f"(a) VeRi size {nq} x {ng}"
    rows, refs = [], []  # refs: (name, total time incl. its distance matrix)

    def diff(cmc, mAP, mINP):
        d = [np.abs(m.cmc - cmc).max(), abs(m.mAP - mAP)] + ([abs(m.mINP - mINP)] if mINP else [])
        return f"max |metric diff| {max(d):.1e}"

    distmat, t_dist = timed(dense_sqdist, qf, gf, repeat=3)
    # ref 1 once (tens of seconds), the others best of 3 like rank_metrics
    for name, fn, n in (("ref 1: torchreid eval_market1501, literal port (one run)",
                         torchreid_loop, 1),
                        ("ref 2: torchreid-style, vectorised AP (best of 3)",
                         torchreid_vectorised, 3)):  # fmt: skip
        out, t = timed(fn, distmat, *labels, repeat=n)
        rows.append((size, name, t_dist + t, f"incl. {t_dist:.2f} s distance matrix; {diff(*out)}"))
        refs.append((name.split(":")[0], t_dist + t))
    evaluate_cy, why = fastreid_cython(fastreid_dir)
    if evaluate_cy is None:
        rows.append((size, "ref 3: fast-reid evaluate_cy (Cython)", math.nan, f"skipped: {why}"))
    else:
        (cmc, ap, inp), t = timed(evaluate_cy, distmat, *labels, 50, repeat=3)
        rows.append((size, "ref 3: fast-reid evaluate_cy, Cython (best of 3)", t_dist + t,
                     f"incl. {t_dist:.2f} s distance matrix; "
                     f"{diff(cmc, float(np.mean(ap)), float(np.mean(inp)))}"))  # fmt: skip
        refs.append(("ref 3", t_dist + t))
    ratios = ", ".join(f"{t / t_ours:.1f}x {name}" for name, t in refs)
    rows.append((size, "rank_metrics (best of 3)", t_ours,
                 f"{ratios}; r1 {m.rank(1):.4f} mAP {m.mAP:.4f} mINP {m.mINP:.4f}"))  # fmt: skip
    floor = {p: product_time(qf, gf, p) for p in ("fp32", "bf16")}
    rows += [
        (size, "bare Q x G product, fp32 (best of 3)", floor["fp32"],
         f"the screen rank_metrics needs here: {floor['fp32'] / t_ours:.0%} of its time"),
        (size, "bare Q x G product, bf16 (best of 3)", floor["bf16"],
         "too coarse for dense true matches"),
    ]  # fmt: skip
    return rows


def product_time(qf, gf, precision: str) -> float:
    """Best of 3: the query x gallery product alone, in the chunks and kernel rank_metrics uses
    (oneDNN fp32 where present), i.e. the floor of an exact evaluator that screens with it."""
    from vscr_core import _rank

    q, g = (qf, gf) if precision == "fp32" else (qf.bfloat16(), gf.bfloat16())
    rows = max(16, _rank._CACHE_ELEMS // len(g))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for i in range(0, len(q), rows):
            if precision == "fp32" and _rank._LINEAR is not None:
                _rank._LINEAR(q[i : i + rows], g, None, "none", [], "")
            else:
                torch.mm(q[i : i + rows], g.T)
        best = min(best, time.perf_counter() - t)
    return best


# ---------------------------------------------------------------- (b), (c) in fresh processes


def uav_features(quick: bool):
    nids, nq, nd = (2208, 4000, 30_000) if quick else (2208, 16_850, 300_000)
    g = torch.Generator().manual_seed(5)
    centres = centres_for(nids + 30_000, 6)  # 30,000 distractor identities
    qp = torch.randint(0, nids, (nq,), generator=g)
    gp = torch.arange(nids)
    dp = nids + torch.randint(0, 30_000, (nd,), generator=g)
    return (clustered(qp, centres, 0.07, 7), clustered(gp, centres, 0.07, 8), qp, gp,
            clustered(dp, centres, 0.07, 9))  # fmt: skip


def child(task: str, quick: bool) -> None:
    qf, gf, qp, gp, dist = uav_features(quick)
    t = time.perf_counter()
    if task == "exact":
        m = evaluate_uav_veid(qf, gf, qp, gp, distractor_feats=dist)
        info = f"r1 {m.rank(1):.4f} mAP {m.mAP:.4f}"
    elif task == "curve":
        counts = np.linspace(0, len(dist), 7).astype(int).tolist()
        curve = distractor_curve(qf, gf, qp, gp, dist, counts)
        info = "r1 " + " ".join(f"{n // 1000}K:{curve[n].rank(1):.3f}" for n in counts)
    else:
        import faiss

        index = faiss.IndexFlatL2(DIM)
        index.add(gf.numpy())
        index.add(dist.numpy())
        index.search(qf.numpy(), 100)
        info = f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads"
    elapsed = time.perf_counter() - t
    size = f"{len(qf)} x {len(gf) + len(dist)}"
    print(json.dumps(dict(time=elapsed, rss=peak_rss_mb(), info=info, size=size)))


def run_child(task: str, quick: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", task] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_distractors(quick: bool, parts: str) -> list[tuple]:
    rows = []
    exact = run_child("exact", quick)
    label = f"(b) UAV-VeID {exact['size']}"
    note = (f"target < 60 s, < 2500 MB; {exact['info']}")  # fmt: skip
    rows.append((label, f"exact metrics (peak RSS {exact['rss']:.0f} MB)", exact["time"], note))
    if "b" in parts:
        fa = run_child("faiss", quick)
        rows.append((label, f"faiss flat top-100 (peak RSS {fa['rss']:.0f} MB)", fa["time"],
                     f"ours / faiss = {exact['time'] / fa['time']:.2f} (target <= 1.5); "
                     f"{fa['info']}"))  # fmt: skip
    if "c" in parts:
        cu = run_child("curve", quick)
        rows.append(("(c) distractor curve, 7 counts", f"one pass (peak RSS {cu['rss']:.0f} MB)",
                     cu["time"], f"curve / (b) = {cu['time'] / exact['time']:.2f} (target <= 1.5);"
                     f" {cu['info']}"))  # fmt: skip
    return rows


# ---------------------------------------------------------------- (d) extraction


def bench_extract(quick: bool) -> list[tuple]:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=512)  # ResNet-50 trunk + 512-D head
    n, size = (32, 96) if quick else (128, 128)
    ids = torch.arange(n // 2).repeat(2)  # two views of each "vehicle"
    images = torch.randn(n // 2, 3, size, size)[ids] + 0.5 * torch.randn(n, 3, size, size)
    rows, feats = [], {}
    for precision in ("fp32", "bf16"):
        extract_features(model, images[:16], 16, "cpu", precision=precision, progress=False)
        t = time.perf_counter()
        feats[precision] = extract_features(model, images, 32, "cpu", precision=precision,
                                            progress=False)  # fmt: skip
        elapsed = time.perf_counter() - t
        rows.append((f"(d) extraction {n} x 3x{size}x{size}", precision, elapsed,
                     f"{n / elapsed:.1f} images/s"))  # fmt: skip
    cos = torch.nn.functional.cosine_similarity(feats["fp32"], feats["bf16"])
    half = n // 2
    r1 = {p: rank_metrics(f[half:], f[:half], ids[half:], ids[:half], junk="none").rank(1)
          for p, f in feats.items()}  # fmt: skip
    rows[-1] = rows[-1][:3] + (
        rows[-1][3] + f" ({rows[0][2] / rows[1][2]:.2f}x fp32); cosine to fp32 min "
        f"{cos.min():.4f} mean {cos.mean():.4f}; rank-1 fp32 {r1['fp32']:.3f} "
        f"bf16 {r1['bf16']:.3f}",
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="scaled-down sizes (about 1 minute)")
    ap.add_argument("--only", default="a,b,c,d", help="comma-separated parts to run")
    ap.add_argument("--fastreid-dir", type=Path, help="where fast-reid's wheel and Cython build go",
                    default=Path(tempfile.gettempdir()) / "vscr-bench-fastreid")  # fmt: skip
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.quick)
    parts = args.only
    print(f"{cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f} at start (other processes share the cores)"
          f"{', QUICK sizes' if args.quick else ''}")  # fmt: skip
    rows = []
    if "a" in parts:
        rows += bench_veri(args.quick, args.fastreid_dir)
    if "b" in parts or "c" in parts:
        rows += bench_distractors(args.quick, parts)
    if "d" in parts:
        rows += bench_extract(args.quick)
    width = max(len(r[0]) for r in rows)
    wide = max(len(r[1]) for r in rows)
    print(f"{'case':<{width}}  {'what':<{wide}}  {'time s':>8}  notes")
    for case, what, seconds, note in rows:
        print(f"{case:<{width}}  {what:<{wide}}  {seconds:8.3f}  {note}")


if __name__ == "__main__":
    main()
