"""The viewpoint classifier: class merging, learning views, labelling files, checkpoints, Fig. 6."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import snapshot

from vscr_core.config import ViewpointConfig
from vscr_core.data import load_uav_veid, with_view_labels
from vscr_core.data.types import UNKNOWN, VIEW_NAMES, Sample
from vscr_core.data.uav_veid import LIST_FILES, SPLIT_DIRS, VIEW_FILE
from vscr_core.data.views import read_view_labels
from vscr_core.paper.viewpoint_curve import fraction_curve, plot_confusion, plot_fraction_curve
from vscr_core.viewpoint import (
    ViewpointNet,
    evaluate_viewpoint,
    label_dataset,
    load_viewpoint_model,
    predict_views,
    save_viewpoint_model,
    split_by_identity,
    train_viewpoint_classifier,
    view_samples,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest

# Small and quick: 32 px, one thread (two threads on a loaded 2-core machine run several times
# slower than one, as they wait on each other).
SMOKE = ViewpointConfig(num_views=4, image_size=32, steps=60, batch_size=32, lr=0.05)


@pytest.fixture(scope="module")
def smoke_ds(smoke_synth):
    return load_uav_veid(smoke_synth)


@pytest.fixture(scope="module")
def smoke_fit(smoke_ds):
    return train_viewpoint_classifier(list(smoke_ds.train), SMOKE, progress=False)


def held_out_views(root: Path) -> list[Sample]:
    """The query/gallery vehicles of the synthetic tree with their true views (from the
    generator's ground truth): images of identities the classifier never saw."""
    with open(root / "synth_meta.csv", newline="") as f:
        return [Sample(str(root / r["path"]), int(r["pid"]), view=VIEW_NAMES[4].index(r["view"]))
                for r in csv.DictReader(f)
                if r["split"] != "train" and r["view"] in VIEW_NAMES[4]]


def test_merging_4_3_2():
    s = [Sample(f"{v}.jpg", 0, view=v) for v in (0, 1, 2, 3, UNKNOWN)]  # front rear left right ?
    three = view_samples(s, 4, 3)
    assert [(x.path, VIEW_NAMES[3][x.view]) for x in three] == [
        ("0.jpg", "front"), ("1.jpg", "rear"), ("2.jpg", "side"), ("3.jpg", "side")]
    two = view_samples(three, 3, 2)  # side has no front/rear counterpart: dropped
    assert [(x.path, VIEW_NAMES[2][x.view]) for x in two] == [("0.jpg", "front"),
                                                              ("1.jpg", "rear")]
    assert view_samples(s, 4, 2) == two
    with pytest.raises(ValueError, match="cannot refine"):
        view_samples(two, 2, 4)


def test_identity_split_is_fixed_and_disjoint(smoke_ds):
    train, test = split_by_identity(smoke_ds.train, 0.2, seed=0)
    assert {s.pid for s in train}.isdisjoint({s.pid for s in test})
    assert len(train) + len(test) == len(smoke_ds.train)
    assert split_by_identity(smoke_ds.train, 0.2, seed=0) == (train, test)


def test_views_out_of_range_refused():
    with pytest.raises(ValueError, match=r"x\.jpg: view 3; expected 0\.\.2"):
        train_viewpoint_classifier([Sample("x.jpg", 0, view=3)], ViewpointConfig(num_views=3))


def test_smoke_training_beats_chance(smoke_fit, smoke_synth):
    test = held_out_views(smoke_synth)
    result = evaluate_viewpoint(smoke_fit.model, test)
    assert result["confusion"].sum() == len(test) >= 80
    # Chance is 25 % (the four views are about equally common); with ~150 test images one
    # standard error is 3.5 points, so 35 % is clearly above it. This run gets ~42 %.
    majority = result["confusion"].sum(1).max() / len(test)
    assert result["accuracy"] > max(0.35, majority + 0.05), result


def test_training_is_deterministic(smoke_ds):
    cfg = ViewpointConfig(num_views=2, image_size=32, steps=3, batch_size=16)
    samples = view_samples(smoke_ds.train, 4, 2)[:32]
    a, b = (train_viewpoint_classifier(samples, cfg, progress=False) for _ in range(2))
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k


def test_label_file_round_trips(smoke_fit, smoke_ds, smoke_synth, tmp_path):
    out = label_dataset(smoke_fit.model, smoke_ds, tmp_path / "views" / "smoke.csv",
                        progress=False)
    predicted = predict_views(smoke_fit.model, smoke_ds.train).argmax(1).tolist()

    # the CSV, as training reads it (config field data.view_labels)
    relabelled = with_view_labels(smoke_ds, out)
    assert relabelled.num_views == 4
    assert [s.path for s in relabelled.train] == [s.path for s in smoke_ds.train]
    assert [s.view for s in relabelled.train] == predicted
    with open(out, newline="") as f:
        probs = np.array([[float(r[f"p_{v}"]) for v in VIEW_NAMES[4]] for r in csv.DictReader(f)])
    assert np.allclose(probs.sum(1), 1, atol=1e-3)

    # the one-hot file, as the UAV-VeID loader reads it from a copy of the tree
    copy = tmp_path / "copy"
    copy.mkdir()
    for folder in SPLIT_DIRS.values():
        os.symlink(smoke_synth / folder, copy / folder)
    for listing in LIST_FILES.values():
        shutil.copy(smoke_synth / listing, copy / listing)
    shutil.copy(out.with_suffix(".txt"), copy / VIEW_FILE)
    reloaded = load_uav_veid(copy, distractors=False)
    by_name = {Path(s.path).name: s.view for s in reloaded.train}
    assert [by_name[Path(s.path).name] for s in smoke_ds.train] == predicted


def test_label_three_views_header(smoke_ds, tmp_path):
    model = ViewpointNet(3, image_size=32)
    out = label_dataset(model, smoke_ds.train[:5], tmp_path / "three.csv", progress=False)
    header, *rows = out.with_suffix(".txt").read_text().splitlines()
    assert header == "name front side rear"
    assert len(rows) == 5 and all(r.split()[0].endswith(".jpg") for r in rows)
    assert all(sorted(r.split()[1:]) == ["0", "0", "1"] for r in rows)
    assert read_view_labels(out)[1] == 3  # the encoding the training reads


def test_refuses_to_write_into_the_data(smoke_ds, smoke_synth, tmp_path):
    model = ViewpointNet(4, image_size=32)
    before = snapshot(smoke_synth)
    for inside in (smoke_synth / "views.csv", smoke_synth / "image_train" / "v.csv"):
        with pytest.raises(ValueError, match="inside the data set's folder"):
            label_dataset(model, smoke_ds, inside, progress=False)
    with pytest.raises(ValueError, match="inside the data set's folder"):
        label_dataset(model, smoke_ds, tmp_path / "x.csv", data_root=tmp_path, progress=False)
    assert snapshot(smoke_synth) == before
    assert not list(tmp_path.iterdir())


def test_checkpoint_round_trip_and_foreign_files(smoke_fit, smoke_ds, tmp_path):
    path = save_viewpoint_model(smoke_fit.model, tmp_path / "vp.pt", SMOKE)
    loaded = load_viewpoint_model(path)
    samples = smoke_ds.train[:8]
    assert np.allclose(predict_views(loaded, samples, precision="fp32"),
                       predict_views(smoke_fit.model, samples, precision="fp32"), atol=1e-5)

    torch.save({"format": "vscr-checkpoint-v1", "model": {}}, tmp_path / "reid.pt")
    with pytest.raises(ValueError, match="reid.pt is not a viewpoint classifier checkpoint"):
        load_viewpoint_model(tmp_path / "reid.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="text.pt is corrupt or not a torch file"):
        load_viewpoint_model(tmp_path / "text.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_viewpoint_model(tmp_path / "missing.pt")


def test_fraction_curve_and_figures(smoke_ds, tmp_path):
    cfg = ViewpointConfig(num_views=3, image_size=16, steps=2, batch_size=16)
    df = fraction_curve(smoke_ds, fractions=(0.5, 1.0), seeds=(0, 1), cfg=cfg, progress=False)
    assert len(df) == 4 and set(df["num_views"]) == {3}
    assert df["test_images"].nunique() == 1  # one held-out set for every run
    half, full = (df[df["fraction"] == f]["train_images"].iloc[0] for f in (0.5, 1.0))
    assert abs(half - full / 2) <= 1
    assert df["accuracy"].between(0, 1).all()
    fig6 = plot_fraction_curve(df, tmp_path / "fig6.png")
    confusion = plot_confusion(df, tmp_path / "confusion.png", fraction=0.5)
    assert fig6.stat().st_size > 10_000 and confusion.stat().st_size > 10_000
    with pytest.raises(ValueError, match="no runs at fraction 0.25"):
        plot_confusion(df, tmp_path / "c.png", fraction=0.25)
