"""`vscr` command line: thin wrappers around vscr_core.

    vscr synth --preset quick --out DIR          write the synthetic UAV data set
    vscr train --profile quick --out DIR         train (resumes an unfinished run in DIR)
    torchrun --nproc_per_node 2 -m vscr_core.cli train ...   the same under DDP
    vscr eval --checkpoint RUN/checkpoint.pt     metrics on the run's data set and protocol
    vscr extract --checkpoint CKPT --images DIR --out feats.pt
    vscr search --gallery g.pt --query q.pt -k 10 --out top10.csv
    vscr reproduce --profile quick               every notebook, on the synthetic default
    vscr viewpoint train | label | fig6          the viewpoint classifier (Sect. 5.2.1, Fig. 6)
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FEATURES_FORMAT = "vscr-features-v1"  # what `vscr extract` writes and `vscr search` reads


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
                            num_distractors=args.distractors, progress=not args.quiet,
                            workers=args.workers)
    print(f"wrote {path}")
    if args.sheet is not None:
        from vscr_core.viz import contact_sheet

        contact_sheet(path, args.sheet)
        print(f"wrote {args.sheet}")


def _cmd_train(args) -> None:
    from vscr_core.config import profile
    from vscr_core.train import fit

    cfg = profile(args.profile, **parse_overrides(args.set))
    result = fit(cfg, args.out, progress=not args.quiet)
    print(f"checkpoint {result.checkpoint}")


def _cmd_eval(args) -> None:
    from vscr_core.config import Config
    from vscr_core.experiments import evaluate_model
    from vscr_core.train import load_checkpoint, load_data, load_trained_model

    cfg = Config.from_dict(load_checkpoint(args.checkpoint)["config"])
    cfg = cfg.override(**parse_overrides(args.set)) if args.set else cfg
    protocol = parse_overrides(args.protocol)
    model = load_trained_model(args.checkpoint)
    ds = load_data(cfg, **protocol)
    metrics = evaluate_model(model, cfg, ds, num_distractors=args.distractors)
    print(json.dumps({"data": ds.name, **metrics}, indent=2))


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return files


def _cmd_extract(args) -> None:
    from vscr_core.config import Config
    from vscr_core.data.transforms import ImageDataset
    from vscr_core.data.types import Sample
    from vscr_core.evaluate import extract_features
    from vscr_core.files import save_tagged
    from vscr_core.train import load_checkpoint, load_trained_model

    cfg = Config.from_dict(load_checkpoint(args.checkpoint)["config"])
    files = _image_files(args.images)
    images = ImageDataset([Sample(str(p), -1) for p in files], image_size=cfg.data.image_size)
    feats = extract_features(load_trained_model(args.checkpoint), images, args.batch_size,
                             args.device, flip=args.flip)
    save_tagged(args.out, FEATURES_FORMAT, {"paths": [str(p) for p in files], "feats": feats})
    print(f"wrote {len(files)} features of width {feats.shape[1]} to {args.out}")


def _cmd_search(args) -> None:
    import csv

    from vscr_core.evaluate import GalleryIndex
    from vscr_core.files import load_tagged

    what = "a features file written by `vscr extract`"
    gallery = load_tagged(args.gallery, FEATURES_FORMAT, what)
    query = load_tagged(args.query, FEATURES_FORMAT, what)
    index = GalleryIndex(gallery["feats"], backend=args.backend)
    indices, distances = index.search(query["feats"], args.k)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "rank", "gallery", "distance"])
        for qi, (row, dist) in enumerate(zip(indices.tolist(), distances.tolist())):
            for rank, (gi, d) in enumerate(zip(row, dist), start=1):
                writer.writerow([query["paths"][qi], rank, gallery["paths"][gi], f"{d:.6f}"])
    print(f"top-{args.k} of {len(indices)} queries against {len(index)} images -> {args.out}")


def _cmd_reproduce(args) -> None:
    from vscr_core.paper.reproduce import reproduce

    reproduce(args.profile, out_dir=args.out_dir, only=args.notebooks)


def _viewpoint_data(args):
    from vscr_core.data import load_dataset, synthetic_dataset

    if args.dataset == "synth":
        return synthetic_dataset(args.preset, seed=0, root=args.root)
    if args.root is None:
        raise ValueError(f"--root is needed for data set {args.dataset!r}")
    return load_dataset(args.dataset, args.root, **({"csv": args.csv} if args.csv else {}))


def _cmd_viewpoint(args) -> None:
    from vscr_core import viewpoint as vp
    from vscr_core.config import ViewpointConfig

    if args.action == "fig6":
        from vscr_core.paper.viewpoint_curve import run_fig6

        df = run_fig6(args.preset, seeds=tuple(args.seeds))
        print(df.groupby("fraction")["accuracy"].agg(["mean", "std"]).to_string())
        return
    ds = _viewpoint_data(args)
    if args.action == "train":
        cfg = ViewpointConfig(num_views=args.num_views, image_size=args.image_size,
                              steps=args.steps, seed=args.seeds[0], pretrained=args.pretrained)
        fit = vp.train_viewpoint_classifier(vp.view_samples(ds.train, ds.num_views, args.num_views),
                                            cfg)
        out = args.out or vp.VIEWS_DIR / f"viewpoint-{ds.name}-{args.num_views}views.pt"
        print(f"wrote {vp.save_viewpoint_model(fit.model, out, cfg)}")
    else:
        if args.checkpoint is None:
            raise ValueError("vscr viewpoint label needs --checkpoint")
        model = vp.load_viewpoint_model(args.checkpoint)
        out = vp.label_dataset(model, ds, args.out, data_root=args.root)
        print(f"wrote {out}; train with --set data.view_labels={out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vscr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate the synthetic UAV vehicle data set")
    p.add_argument("--preset", default="quick", help="smoke | quick | full")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distractors", type=int, default=None, help="distractor count (full: <=300K)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--sheet", type=Path, default=None, help="also save a contact sheet PNG here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("train", help="train VSCR or a variant from a profile")
    p.add_argument("--profile", default="quick", help="smoke | quick | cpu | paper")
    p.add_argument("--out", required=True, type=Path, help="run folder (resumed if unfinished)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. model.dilations=1, train.epochs=5; "
                        "data.dataset=veri776 data.root=DIR (data.csv=FILE for a folder) also "
                        "brings that data set's view classes and random erasing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a trained checkpoint on its data set's protocol")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--protocol", nargs="*", default=[], metavar="KEY=VALUE",
                   help="loader arguments, e.g. split=test (UAV-VeID), subset=large (VERI-Wild)")
    p.add_argument("--distractors", type=int, default=0, help="UAV-VeID distractors to add")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. data.root=/data/UAV-VeID")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("extract", help="features of every image under a folder")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--flip", action="store_true", help="average with the mirrored image")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("search", help="top-k gallery images for each query (features files)")
    p.add_argument("--gallery", required=True, type=Path)
    p.add_argument("--query", required=True, type=Path)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--backend", default="torch", help="torch (exact) | faiss")
    p.add_argument("--out", required=True, type=Path, help="CSV: query, rank, gallery, distance")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("viewpoint", help="train or apply the viewpoint classifier; Fig. 6")
    p.add_argument("action", choices=["train", "label", "fig6"])
    p.add_argument("--dataset", default="synth", help="synth | uav_veid | veri776 | ...")
    p.add_argument("--root", type=Path, default=None, help="the data set's folder")
    p.add_argument("--csv", type=Path, default=None, help="dataset folder: its CSV of crops")
    p.add_argument("--preset", default="quick", help="synthetic preset (dataset synth, fig6)")
    p.add_argument("--num-views", type=int, default=4, help="4, 3 (front/side/rear) or 2")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--pretrained", default=None, help="imagenet or a weights file")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--checkpoint", type=Path, default=None, help="classifier to label with")
    p.add_argument("--out", type=Path, default=None)
    p.set_defaults(func=_cmd_viewpoint)

    p = sub.add_parser("reproduce", help="execute every notebook (papermill) in a profile")
    p.add_argument("--profile", default="quick", help="smoke | quick | cpu | paper")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where results/, figures/ and the executed notebooks go (default: "
                        "out/<profile>/; for the cpu profile the repository itself, i.e. the "
                        "committed outputs)")
    p.add_argument("--notebooks", nargs="+", default=None, metavar="PREFIX",
                   help="only these notebooks, by name or prefix (e.g. 02 03)")
    p.set_defaults(func=_cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"vscr {args.command}: {e}")


if __name__ == "__main__":
    main()
