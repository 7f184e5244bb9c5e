"""run(config) -> metrics: train (or resume, or reuse) a model and evaluate it on its data set's
protocol. A run lives in `results/runs/<name>-<config digest>/`, so a model shared by several
tables trains once, and rerunning reuses finished runs and resumes unfinished ones."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from vscr_core import evaluate
from vscr_core.config import Config, continued
from vscr_core.data.registry import dataset_spec
from vscr_core.data.types import ReIDDataset
from vscr_core.files import REPO_ROOT, atomic_write_bytes
from vscr_core.train import (
    CHECKPOINT_NAME,
    TRAINING_SEMANTICS,
    features,
    fit,
    load_checkpoint,
    load_data,
    resolve_device,
    save_checkpoint,
)

RUNS_DIR = REPO_ROOT / "results" / "runs"


def run_dir(cfg: Config, runs_dir: str | Path | None = None) -> Path:
    """`<runs_dir>/<name>-<config digest>-t<training semantics>`: a run trained by other training
    code lives in another folder and is never reused."""
    return Path(runs_dir or RUNS_DIR) / f"{cfg.name}-{cfg.digest()}-t{TRAINING_SEMANTICS}"


def evaluate_model(model, cfg: Config, ds: ReIDDataset, *, num_distractors: int = 0,
                   progress: bool = True) -> dict:
    """Rank metrics of `model` on the query/gallery of `ds` under the protocol of its data set
    (data.registry): repeated gallery draws over the test list (VehicleID), optional distractors
    (UAV-VeID and the synthetic set), the same-camera junk rule where it applies."""
    device = resolve_device(cfg.train.device)
    spec = dataset_spec(cfg.data.dataset)
    if spec.gallery_draws:  # the whole test list in path order; the evaluator redoes the draws
        test = sorted(ds.query + ds.gallery)
        pids = [s.pid for s in test]
        result = evaluate.evaluate_vehicleid(features(model, test, cfg, device, progress), pids,
                                             num_draws=spec.gallery_draws)
        # each draw: one gallery image per id, every other image a query
        return {**result.mean, **{f"{k}_std": v for k, v in result.std.items()},
                "num_queries": len(pids) - len(set(pids)), "num_draws": spec.gallery_draws}
    _check_distractors(ds, num_distractors)
    q = features(model, ds.query, cfg, device, progress)
    g = features(model, ds.gallery, cfg, device, progress)
    q_pids, g_pids = [s.pid for s in ds.query], [s.pid for s in ds.gallery]
    if num_distractors:  # only UAV-VeID-style sets have them: no junk rule
        d = features(model, ds.distractors[:num_distractors], cfg, device, progress)
        return evaluate.evaluate_uav_veid(q, g, q_pids, g_pids, distractor_feats=d).as_dict()
    q_cams, g_cams = [s.camid for s in ds.query], [s.camid for s in ds.gallery]
    return evaluate.rank_metrics(q, g, q_pids, g_pids, q_cams, g_cams,
                                 junk=spec.junk_rule(q_cams + g_cams)).as_dict()


def _check_distractors(ds: ReIDDataset, n: int) -> None:
    if n > len(ds.distractors):
        raise ValueError(f"{n} distractors asked for, {ds.name} has {len(ds.distractors)}")


def trained_model(cfg: Config, runs_dir: str | Path | None = None, progress: bool = True):
    """The model of `cfg`, trained in its run folder (or resumed, or loaded when finished; a
    `continued` config starts from the shorter run's checkpoint)."""
    out = run_dir(cfg, runs_dir)
    if not (out / CHECKPOINT_NAME).exists():
        _start_from_shorter_run(cfg, out, runs_dir)
    return fit(cfg, out, progress=progress).model


def _start_from_shorter_run(cfg: Config, out: Path, runs_dir) -> None:
    """Seed the empty run folder `out` with the checkpoint of the run that `cfg` continues
    (`shorter_run`), if one was trained: its epochs are the first epochs of `cfg`'s, so fit()
    resumes from there. The shorter run's folder is left as it is."""
    source = shorter_run(cfg, runs_dir)
    if source is None:
        return
    state = load_checkpoint(source / CHECKPOINT_NAME)
    state["config"] = cfg.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / CHECKPOINT_NAME, state)
    print(f"run {out.name}: continues {source.name} from its epoch {state['epoch']}", flush=True)


def shorter_run(cfg: Config, runs_dir: str | Path | None = None) -> Path | None:
    """The folder of the longest run with a checkpoint that `cfg` continues (config.continued:
    the same run, fewer epochs), or None."""
    candidates = []
    for path in Path(runs_dir or RUNS_DIR).glob(f"{cfg.name}-*-t{TRAINING_SEMANTICS}"):
        if not (path / CHECKPOINT_NAME).is_file() or not (path / "config.json").is_file():
            continue
        shorter = Config.from_dict(json.loads((path / "config.json").read_text()))
        extra = cfg.train.epochs - shorter.train.epochs
        if extra >= 1 and continued(shorter, extra).digest() == cfg.digest():
            candidates.append((shorter.train.epochs, path))
    return max(candidates)[1] if candidates else None


def default_protocol(cfg: Config) -> dict:
    """The validation split where the data set has one (UAV-VeID, the synthetic set); the
    others: their test protocol."""
    return dataset_spec(cfg.data.dataset).protocol("val")


def run(cfg: Config, *, protocol: dict | None = None, num_distractors: int = 0,
        runs_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train `cfg` (reusing or resuming its run folder) and return its metrics on the evaluation
    `protocol` (loader arguments; default: UAV-VeID's and the synthetic set's val split), cached
    in the run folder as metrics-<protocol>[-d<distractors>].json."""
    if protocol is None:
        protocol = default_protocol(cfg)
    out = run_dir(cfg, runs_dir)
    cached = metrics_path(cfg, protocol, num_distractors, runs_dir)
    tag = cached.stem.removeprefix("metrics-")
    if cached.exists():
        metrics = json.loads(cached.read_text())
        print(f"run {out.name} [{tag}]: reused, {_summary(metrics)}", flush=True)
        return metrics
    tic = time.perf_counter()
    model = trained_model(cfg, runs_dir, progress)  # a finished run only loads its checkpoint
    ds = load_data(cfg, **protocol)
    metrics = evaluate_model(model, cfg, ds, num_distractors=num_distractors, progress=progress)
    metrics.update(run=out.name, protocol=tag, seconds=round(time.perf_counter() - tic, 1))
    atomic_write_bytes(cached, json.dumps(metrics, indent=2).encode())
    print(f"run {out.name} [{tag}]: {_summary(metrics)} ({metrics['seconds']} s)", flush=True)
    return metrics


def metrics_path(cfg: Config, protocol: dict, num_distractors: int = 0,
                 runs_dir: str | Path | None = None) -> Path:
    """Where `run` caches the metrics of `cfg` on `protocol`: metrics-<protocol>[-d<n>].json."""
    tag = "-".join(f"{v}" for _, v in sorted(protocol.items())) or "test"
    tag += f"-d{num_distractors}" if num_distractors else ""
    return run_dir(cfg, runs_dir) / f"metrics-{tag}.json"


def _summary(m: dict) -> str:
    return f"rank-1 {100 * m['rank1']:.2f} %, mAP {100 * m['mAP']:.2f} %"


def measured_chance(cfg: Config, protocol: dict | None = None, num_distractors: int = 0) -> dict:
    """chance_level of the data set and protocol that experiments.run evaluates (`cfg` names
    the data set), plus its query and gallery counts. Only list files are read."""
    ds = load_data(cfg, **(default_protocol(cfg) if protocol is None else protocol))
    spec = dataset_spec(cfg.data.dataset)
    if spec.gallery_draws:  # every draw: one gallery image per id, the rest queries
        pids = [s.pid for s in ds.query + ds.gallery]
        g = len(set(pids))
        m, n = np.ones(len(pids) - g, dtype=np.int64), np.full(len(pids) - g, g)
    else:
        _check_distractors(ds, num_distractors)
        qc, gc = [s.camid for s in ds.query], [s.camid for s in ds.gallery]
        m, n = evaluate.protocol_counts([s.pid for s in ds.query], [s.pid for s in ds.gallery],
                                        qc, gc, junk=spec.junk_rule(qc + gc))
        n = n + num_distractors
    gallery = int(n.max()) if len(n) else 0
    return {**evaluate.chance_level(m, n), "queries": len(m), "gallery": gallery}
