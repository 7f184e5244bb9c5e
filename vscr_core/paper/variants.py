"""The model variants of the paper's ablations (Tables 2-4) as config overrides, and the trained
models the comparison and visualisation notebooks share.

A variant is a name ("baseline", "t2_b", ..., "vscr"); `variant_config(base, name, seed)` turns a
profile's Config into that variant's Config. Its run folder is `<profile>-<variant>-s<seed>-
<digest>`, and a model that several tables use has one name: Table 2's row (a), Table 3's and
Table 4's baseline are all "baseline", Table 2's row (g) is Table 4's "multi_scale", and Table 3's
4-view adversary is Table 4's "view_adversary". So each trains once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vscr_core.config import Config, ModelConfig, Profile, TrainConfig
from vscr_core.train import missing_views_message, view_classes


@dataclass(frozen=True)
class Variant:
    name: str
    label: str  # the row label of the paper's table
    short: str  # the same, short enough for a plot's axis
    model: dict[str, Any]  # ModelConfig overrides; num_views=None: the data set's view classes


def _v(name: str, label: str, short: str, dilations=(1,), share=False, fuse=False,
       views: int | None = 0):
    """views: 0 = no view adversary, None = the data set's view classes, n = n classes."""
    return Variant(name, label, short, {"dilations": dilations, "share_branches": share,
                                        "fuse": fuse, "view_adversary": views != 0,
                                        "num_views": views})


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    _v("baseline", "(a) baseline: d = 1", "(a) baseline"),
    _v("t2_b", "(b) d = 1, 2; shared weights; fused 1024-D", "(b) 1,2 shared fused", (1, 2),
       share=True, fuse=True),
    _v("t2_c", "(c) d = 1, 2; shared weights; MSCL", "(c) 1,2 shared MSCL", (1, 2), share=True),
    _v("t2_d", "(d) d = 1, 2; fused 1024-D", "(d) 1,2 fused", (1, 2), fuse=True),
    _v("t2_e", "(e) d = 1, 2; MSCL", "(e) 1,2 MSCL", (1, 2)),
    _v("t2_f", "(f) d = 1, 2, 3; fused 1536-D", "(f) 1,2,3 fused", (1, 2, 3), fuse=True),
    _v("multi_scale", "(g) d = 1, 2, 3; MSCL", "(g) 1,2,3 MSCL", (1, 2, 3)),
    _v("t2_h", "(h) d = 1, 2, 3, 4; MSCL", "(h) 1-4 MSCL", (1, 2, 3, 4)),
    _v("view3", "3-view adversarial (front, side, rear)", "3-view adversary", views=3),
    _v("view_adversary", "view adversarial (the data set's view classes)", "view adversary",
       views=None),
    _v("vscr", "VSCR: d = 1, 2, 3; MSCL; view adversarial", "VSCR", (1, 2, 3), views=None),
)}

TABLE2 = ("baseline", "t2_b", "t2_c", "t2_d", "t2_e", "t2_f", "multi_scale", "t2_h")
TABLE4 = ("baseline", "view_adversary", "multi_scale", "vscr")


def table3_variants(num_views: int) -> tuple[str, ...]:
    """Table 3's rows on a data set with `num_views` view classes: the baseline, the 3-view
    adversary where the data have more than 3 views, and the adversary over all of them."""
    return ("baseline", "view3", "view_adversary") if num_views > 3 else (
        "baseline", "view_adversary")


def variant_config(base: Config, name: str, seed: int = 0) -> Config:
    """`base` (a profile's Config with the notebook's data set) as variant `name`, seed `seed`."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {', '.join(VARIANTS)}")
    model = dict(VARIANTS[name].model)
    views = view_classes(base) if model["view_adversary"] else 0
    if model["view_adversary"] and views == 0:  # a folder of crops without a view column
        raise ValueError(missing_views_message(base, base.data.dataset))
    if model["num_views"] is None:
        model["num_views"] = views
    elif not model["view_adversary"]:
        # fields a model without the adversary never reads: fixed, so that the profile's
        # adversary settings do not change the runs (and cache keys) of the other variants
        model["num_views"] = base.model.num_views
        model["grl_lambda"] = ModelConfig.grl_lambda
    elif model["num_views"] > views:
        raise ValueError(f"variant {name!r} needs {model['num_views']} view classes; "
                         f"{base.data.dataset} has {views}")
    train = {"seed": seed}
    if model["fuse"] or len(model["dilations"]) == 1:
        # likewise, a model without MSCL never reads its settings (e.g. in the lambda_3 sweep)
        train.update(mscl_weight=TrainConfig.mscl_weight, mscl_reduction=TrainConfig.mscl_reduction)
    profile = base.name.split("-")[0]
    return base.override(name=f"{profile}-{name}-s{seed}",
                         **{f"train.{k}": v for k, v in train.items()},
                         **{f"model.{k}": v for k, v in model.items()})


def scheduled_variant(settings: Profile, name: str, seed: int = 0, base: Config | None = None
                      ) -> Config:
    """variant_config on its seed's schedule under `settings` (Profile.schedule: an extended
    seed trains longer); base: the profile's Config, or a notebook's with its own data set."""
    return settings.schedule(variant_config(settings.config if base is None else base, name,
                                            seed))


__all__ = ["TABLE2", "TABLE4", "VARIANTS", "Variant", "scheduled_variant", "table3_variants",
           "variant_config"]
