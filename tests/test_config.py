"""Config round-trips, rejects unknown fields and impossible values, and profiles are sane."""

import json

import pytest

from vscr_core.config import PROFILES, Config, lr_milestones, profile, profile_settings
from vscr_core.data.types import UNKNOWN, VIEW_NAMES, flip_view, merge_view


@pytest.mark.parametrize("name", list(PROFILES))
def test_profiles_round_trip_through_json(name):
    cfg = PROFILES[name].config
    again = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.digest() == cfg.digest()


@pytest.mark.parametrize("name", list(PROFILES))
def test_a_profile_is_one_object_holding_what_it_decides(name):
    p = profile_settings(name)
    assert p.name == name == profile(name).name and p.config is PROFILES[name].config
    assert p.seeds and 1 <= p.table2_seeds <= len(p.seeds)
    assert ("not converged" in p.about) == (name in ("smoke", "quick")) and "converged" in p.about
    assert p.fig6.fractions == tuple(sorted(p.fig6.fractions)) and p.fig6.fractions[-1] == 1.0
    with pytest.raises(ValueError, match="unknown profile 'nope'.*smoke"):
        profile_settings("nope")


def test_paper_profile_has_the_papers_settings():
    cfg = profile("paper")
    assert cfg.model.backbone == "resnet50" and cfg.model.dilations == (1, 2, 3)
    assert cfg.model.pretrained == "imagenet" and cfg.data.image_size == (224, 224)
    t = cfg.train
    assert (t.ids_per_batch, t.images_per_id, t.lr, t.momentum, t.weight_decay) == (
        8, 4, 0.01, 0.9, 3e-4)
    assert (t.epochs, lr_milestones(t), t.triplet_margin) == (120, (30, 60, 90), 0.3)
    assert (t.triplet_weight, t.view_weight, t.mscl_weight) == (1.0, 1.0, 1.0)


def test_shorter_schedules_scale_the_lr_steps_proportionally():
    assert lr_milestones(profile("paper", **{"train.epochs": 24}).train) == (6, 12, 18)
    assert lr_milestones(profile("paper", **{"train.lr_steps": (5, 7)}).train) == (5, 7)


def test_unknown_fields_are_named():
    with pytest.raises(ValueError, match="model.dilation\\b"):
        Config.from_dict({"model": {"dilation": [1, 2]}})
    with pytest.raises(ValueError, match="unknown config field 'train.lr_rate'"):
        profile("smoke").override(**{"train.lr_rate": 0.1})
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        profile("fast")


@pytest.mark.parametrize("field, value, match", [
    ("model.num_views", 5, "model.num_views"),
    ("model.dilations", (1, 1), "model.dilations"),
    ("model.backbone", "vgg", "model.backbone"),
    ("train.precision", "int8", "train.precision"),
    ("train.ids_per_batch", 1, "train.ids_per_batch"),
    ("data.dataset", "market1501", "data.dataset"),
])
def test_impossible_values_are_refused_with_the_field_name(field, value, match):
    with pytest.raises(ValueError, match=match):
        profile("smoke").override(**{field: value})


def test_digest_changes_with_settings_but_not_with_the_name():
    base = profile("smoke")
    assert base.override(name="other").digest() == base.digest()
    assert base.override(**{"train.seed": 1}).digest() != base.digest()


def test_view_merging_and_flipping():
    # 4 -> 3: left and right become side; 4 -> 2 and 3 -> 2: side views have no counterpart
    assert [merge_view(v, 4, 3) for v in range(4)] == [0, 2, 1, 1]
    assert [merge_view(v, 4, 2) for v in range(4)] == [0, 1, UNKNOWN, UNKNOWN]
    assert [merge_view(v, 3, 2) for v in range(3)] == [0, UNKNOWN, 1]
    assert merge_view(UNKNOWN, 4, 3) == UNKNOWN
    for n in (2, 3, 4):
        names = VIEW_NAMES[n]
        assert [VIEW_NAMES[n][merge_view(v, n, n)] for v in range(n)] == list(names)
    with pytest.raises(ValueError, match="cannot refine 2 view classes into 4"):
        merge_view(0, 2, 4)
    assert [flip_view(v, 4) for v in range(4)] == [0, 1, 3, 2]
    assert [flip_view(v, 3) for v in range(3)] == [0, 1, 2]
