"""The synthetic generator keeps its promises: determinism, splits, protocol, views, scales."""

from __future__ import annotations

import csv
import hashlib
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vscr_core.data import SYNTH_PRESETS, load_dataset, synthetic_dataset
from vscr_core.data.synth import render as R  # the module; the function is R.render
from vscr_core.data.synth import write as W
from vscr_core.data.types import VIEW_NAMES


def meta(root: Path) -> list[dict]:
    with open(root / W.META_FILE, newline="") as f:
        return list(csv.DictReader(f))


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def ids_in(root: Path, listing: str) -> list[int]:
    return [int(line.split()[1]) for line in (root / listing).read_text().splitlines()]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, smoke_synth):
    again = W.generate_dataset(tmp_path / "again", "smoke", seed=0, progress=False)
    assert digest(again) == digest(smoke_synth)
    other = W.generate_dataset(tmp_path / "other", "smoke", seed=1, progress=False)
    a, b = digest(smoke_synth), digest(other)
    assert sum(a.get(k) == v for k, v in b.items()) < 0.05 * len(b)


def test_worker_processes_give_the_same_bytes(tmp_path, monkeypatch):
    """The process pool renders in any order; the bytes must not depend on it."""
    monkeypatch.setattr(W, "POOL_MIN_JOBS", 0)
    one = W.generate_dataset(tmp_path / "one", "smoke", seed=5, progress=False, workers=1)
    two = W.generate_dataset(tmp_path / "two", "smoke", seed=5, progress=False, workers=2)
    assert len(digest(one)) > 200 and digest(one) == digest(two)


def test_splits_are_disjoint_with_one_gallery_image_per_id(smoke_synth):
    train = set(ids_in(smoke_synth, "train_id_label.txt"))
    n = SYNTH_PRESETS["smoke"].num_ids
    sizes = W._split_sizes(n)
    for split in ("val", "test"):
        query = ids_in(smoke_synth, f"{split}_q_label.txt")
        gallery = ids_in(smoke_synth, f"{split}_g_label.txt")
        assert sorted(gallery) == sorted(set(gallery))  # one gallery image per identity
        assert set(query) <= set(gallery) and len(set(gallery)) == sizes[split]
        assert not set(gallery) & train
    assert len(train) == sizes["train"]
    assert not set(ids_in(smoke_synth, "val_g_label.txt")) & set(ids_in(smoke_synth,
                                                                         "test_g_label.txt"))
    rows = meta(smoke_synth)
    vehicles = [r for r in rows if r["split"] != "distractor"]
    per_id = Counter(r["pid"] for r in vehicles)
    assert min(per_id.values()) >= 2  # UAV-VeID: at least two boxes per vehicle
    distractors = [r for r in rows if r["split"] == "distractor"]
    assert len(distractors) == SYNTH_PRESETS["smoke"].num_distractors
    assert {r["kind"] for r in distractors} <= {"vehicle", "background", "partial"}
    # distractor vehicles are identities outside every split
    assert not {r["pid"] for r in distractors} & set(per_id)


def test_view_labels_follow_the_heading(smoke_synth):
    rows = {r["path"]: r for r in meta(smoke_synth)}
    for r in rows.values():
        assert r["view"] == VIEW_NAMES[4][R.view_of_heading(float(r["heading_deg"]))]
    viewfile = smoke_synth / "train_view_label(front rear left right).txt"
    for line in viewfile.read_text().splitlines():
        name, *flags = line.split()
        assert flags.count("1") == 1
        assert VIEW_NAMES[4][flags.index("1")] == rows[f"image_train/{name}"]["view"]
    ds = load_dataset("uav_veid", smoke_synth)
    assert ds.num_views == 4 and all(s.view >= 0 for s in ds.train)


@pytest.mark.parametrize("heading,seen,hidden", [
    (10, "front", "rear"), (100, "left", "right"), (190, "rear", "front"), (280, "right", "left"),
])
def test_rendered_faces_agree_with_the_label(heading, seen, hidden):
    """The camera of a 'left' image sees the car's left side, not its right, and so on."""
    rng = np.random.default_rng(0)
    ident = R.random_identity(rng, 0)
    job = W._image_job(rng, 0, "x.jpg", "train", "vehicle", ident, [R.random_scene(rng)],
                       SYNTH_PRESETS["smoke"])
    job = R.ImageJob(**{**job.__dict__, "heading": float(heading), "pitch": 45.0})
    _, visible = R.render(job, SYNTH_PRESETS["smoke"], seed=0)
    assert f"body.{seen}" in visible and f"body.{hidden}" not in visible
    assert VIEW_NAMES[4][R.view_of_heading(heading)] == seen


def test_a_mark_on_one_side_shows_from_that_side_only():
    """Marks live on faces: a magenta stripe on the left flank is in left views, not right."""
    rng = np.random.default_rng(3)
    ident = R.random_identity(rng, 0)
    stripe = R.Decal("body", "left", R._rect(0.05, 0.95, 0.3, 0.7), (255, 0, 255))
    ident = R.Identity(**{**ident.__dict__, "body": "sedan", "colour": "grey",
                          "rgb": (120, 120, 120), "decals": (stripe,), "roof_box": None})
    scene = R.Scene("road", (90, 90, 90), (235, 235, 230), False, 0.0, 60.0, 0.9, 0.1,
                    (1.0, 1.0, 1.0), 1.0)

    def magenta(heading):
        job = R.ImageJob(0, "x.jpg", "train", "vehicle", ident, heading, 20.0, 50.0, 0.0, scene,
                         0, False, 0.0, 95, (0.05, 0.05, 0.05, 0.05))
        img, _ = R.render(job, SYNTH_PRESETS["smoke"], seed=0)
        a = np.asarray(img, int)
        return ((a[..., 0] > 150) & (a[..., 2] > 150) & (a[..., 1] < 100)).mean()

    assert magenta(90.0) > 0.03
    assert magenta(270.0) == 0.0


def test_spread_of_viewpoints_and_scales(smoke_synth):
    rows = [r for r in meta(smoke_synth) if r["kind"] == "vehicle"]
    st = SYNTH_PRESETS["smoke"]
    alt = np.array([float(r["altitude_m"]) for r in rows])
    pitch = np.array([float(r["pitch_deg"]) for r in rows])
    assert st.altitude_m[0] <= alt.min() and alt.max() <= st.altitude_m[1]
    assert alt.max() - alt.min() > 0.8 * (st.altitude_m[1] - st.altitude_m[0])
    assert st.pitch_deg[0] <= pitch.min() and pitch.max() <= st.pitch_deg[1]
    views = Counter(r["view"] for r in rows)
    assert set(views) == set(VIEW_NAMES[4])
    assert min(views.values()) > 0.12 * len(rows)  # headings are uniform: about 25 % each
    side = np.array([max(int(r["box_w"]), int(r["box_h"])) for r in rows])
    assert side.min() >= 8 and side.max() <= st.max_side
    # higher flight -> smaller boxes (rank correlation, scale is the main factor)
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert np.corrcoef(rank(alt), rank(side))[0, 1] < -0.5
    assert np.percentile(side, 90) > 2.5 * np.percentile(side, 10)
    # the images on disk have the sizes the metadata says
    from PIL import Image
    for r in rows[:20]:
        with Image.open(smoke_synth / r["path"]) as im:
            assert im.size == (int(r["box_w"]), int(r["box_h"]))


def test_look_alikes_colours_and_bodies(smoke_synth):
    rng = np.random.default_rng(0)
    idents = [R.random_identity(rng, i) for i in range(2000)]
    colours = Counter(i.colour for i in idents)
    assert sum(colours[c] for c in ("white", "black", "grey", "silver")) > 0.6 * len(idents)
    assert len({i.body for i in idents}) >= 6
    # many identities share body type and colour with another, and differ in marks only
    groups = Counter((i.body, i.colour) for i in idents)
    assert sum(n for n in groups.values() if n > 1) > 0.9 * len(idents)
    assert 0.05 < np.mean([not i.marks for i in idents]) < 0.3


def test_interrupted_generation_leaves_no_tree_and_resumes(tmp_path, monkeypatch, smoke_synth):
    out = tmp_path / "smoke"
    calls = {"n": 0}
    real = W.render  # the renderer as the writer calls it

    def dies_after_50(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 50:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(W, "render", dies_after_50)
    with pytest.raises(KeyboardInterrupt):
        W.generate_dataset(out, "smoke", seed=0, progress=False)
    assert not out.exists()  # nothing that looks like a finished tree
    partial = list(tmp_path.glob(".smoke.partial-*"))
    assert len(partial) == 1 and len(list(partial[0].rglob("*.jpg"))) == 50
    monkeypatch.setattr(W, "render", real)
    W.generate_dataset(out, "smoke", seed=0, progress=False)  # resumes, same bytes as fresh
    assert digest(out) == digest(smoke_synth)
    assert not list(tmp_path.glob(".smoke.partial-*"))
    with pytest.raises(FileExistsError):
        W.generate_dataset(out, "smoke", seed=0, progress=False)
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        W.generate_dataset(tmp_path / "x", "huge")


def test_a_tree_another_process_finished_first_is_taken_as_ours(tmp_path, monkeypatch,
                                                                 smoke_synth):
    out = tmp_path / "smoke"
    calls = {"n": 0}
    real = W.render

    def other_process_finishes_at_10(*args, **kwargs):
        # what a second builder of the same tree does while this one is paused: it completes the
        # shared partial folder and renames it into place
        calls["n"] += 1
        if calls["n"] == 10:
            shutil.copytree(smoke_synth, out)
            shutil.rmtree(next(tmp_path.glob(".smoke.partial-*")))
        return real(*args, **kwargs)

    monkeypatch.setattr(W, "render", other_process_finishes_at_10)
    assert W.generate_dataset(out, "smoke", seed=0, progress=False, workers=1) == out
    assert calls["n"] == 10 and digest(out) == digest(smoke_synth)
    assert not list(tmp_path.glob(".smoke.partial-*"))  # the failed write did not recreate it


def test_synthetic_dataset_caches_under_vscr_data(tmp_path, monkeypatch, smoke_synth):
    monkeypatch.setenv("VSCR_DATA", str(tmp_path))
    calls = []
    monkeypatch.setattr("vscr_core.data.generate_dataset",
                        lambda root, **kw: calls.append(root) or W.generate_dataset(root, **kw))
    ds = synthetic_dataset("smoke", seed=0, progress=False)
    assert calls == [tmp_path / "synth-smoke-s0"]
    assert ds.name == "synth-smoke-s0-val" and ds.num_views == 4
    ds2 = synthetic_dataset("smoke", seed=0, split="test", progress=False)
    assert len(calls) == 1 and ds2.gallery != ds.gallery  # cached, not regenerated
    ds3 = synthetic_dataset("smoke", seed=0, root=smoke_synth)
    assert [s.pid for s in ds3.train] == [s.pid for s in ds.train]
    assert len(ds3.distractors) == SYNTH_PRESETS["smoke"].num_distractors
    (tmp_path / "junk").mkdir()
    with pytest.raises(Exception, match="not a finished synthetic tree"):
        synthetic_dataset("smoke", seed=0, root=tmp_path / "junk")


def test_more_distractors_leave_every_other_image_alone(tmp_path, monkeypatch, smoke_synth):
    """Fig. 8's larger tree: the same test images and the same first distractors, so models
    trained on the preset's tree are evaluated on it."""
    monkeypatch.setenv("VSCR_DATA", str(tmp_path))
    n = SYNTH_PRESETS["smoke"].num_distractors
    big = synthetic_dataset("smoke", seed=0, split="test", num_distractors=n + 15,
                            progress=False)
    assert Path(big.gallery[0].path).is_relative_to(tmp_path / f"synth-smoke-s0-d{n + 15}")
    small = synthetic_dataset("smoke", seed=0, split="test", root=smoke_synth)
    assert len(big.distractors) == n + 15 and len(small.distractors) == n

    def same(a, b):
        return [Path(s.path).read_bytes() for s in a] == [Path(s.path).read_bytes() for s in b]

    assert same(big.query + big.gallery + big.train, small.query + small.gallery + small.train)
    assert same(big.distractors[:n], small.distractors)
    assert not same(big.distractors[n:n + 1], small.distractors[:1])


def test_contact_sheet(tmp_path, smoke_synth):
    from PIL import Image

    from vscr_core.viz import contact_sheet

    out = contact_sheet(smoke_synth, tmp_path / "sheet.png", num_ids=3, cell=64)
    with Image.open(out) as im:
        assert im.size[0] == 70 + 4 * 64 and im.size[1] > 4 * 64
