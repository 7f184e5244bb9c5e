"""`vscr` command line: thin wrappers around vscr_core.

    vscr synth --preset quick --out DIR        write the synthetic UAV data set
    vscr train --profile quick --out DIR       train (resumes an unfinished run in DIR)
    torchrun --nproc_per_node 2 -m vscr_core.cli train ...   the same under DDP
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def parse_overrides(items: list[str]) -> dict:
    """`--set model.dilations=1,2,3 train.epochs=5` -> {"model.dilations": (1, 2, 3), ...}."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare string such as resnet18 or a path
        out[key] = value
    return out


def _cmd_synth(args) -> None:
    from vscr_core.data.synth import generate_dataset

    path = generate_dataset(args.out, preset=args.preset, seed=args.seed,
                            num_distractors=args.distractors)
    print(f"wrote {path}")


def _cmd_train(args) -> None:
    from vscr_core.config import profile
    from vscr_core.train import fit

    cfg = profile(args.profile, **parse_overrides(args.set))
    result = fit(cfg, args.out, progress=not args.quiet)
    print(f"checkpoint {result.checkpoint}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vscr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate the synthetic UAV vehicle data set")
    p.add_argument("--preset", default="quick", help="smoke | quick | full")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distractors", type=int, default=None, help="distractor count (full: <=300K)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("train", help="train VSCR or a variant from a profile")
    p.add_argument("--profile", default="quick", help="smoke | quick | paper")
    p.add_argument("--out", required=True, type=Path, help="run folder (resumed if unfinished)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. model.dilations=1, train.epochs=5")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"vscr {args.command}: {e}")


if __name__ == "__main__":
    main()
