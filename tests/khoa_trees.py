"""Small trees in every real on-disk layout, built from real photographs.

The photographs are the Khoa vehicle ReID sample in ../shared/data/khoa-vehicle-reid beside the
clone (Apache-2.0; every tree built here carries its LICENSE, its README.md and a NOTICE saying
where the photographs come from): 507 vehicles, one photograph from each of two road cameras
(cam1, cam2), identities `<type>_<NNNN>`, the authors' split into train.txt (405 vehicles) and
val.txt (102). Every tree trains on train.txt vehicles and evaluates on val.txt vehicles, query =
camera 1 and gallery = camera 2, so each query has exactly one true match.

    sample = sample_vehicles(n_train=60, n_test=30, n_distractors=10)  # None: all of that list
    sample = sample_vehicles(None, None, 0)                             # the authors' full split
    trees = build_trees(tmp_dir, sample)                                # {layout: root}

Layouts (their readers are vscr_core/data/<layout>.py; integer ids are `type base + NNNN`, see
TYPE_BASE, so car_0088 is 1088 in every tree):
    uav_veid         the dataset README's naming: train_id_label.txt, val_q_label.txt,
                     val_g_label.txt, test_q_label.txt, test_g_label.txt; the val and the test
                     split both hold the evaluation vehicles (the sample has one held-out list);
                     distractors/ (both photographs of vehicles used nowhere else); a view file
    uav_veid_labels  the naming of copies in the wild: UAV-labels/{train_id_label,
                     test_query_label,test_gallery_label}.txt and the view file there; test split
                     only, as those copies have; distractors/
    veri776          image_{train,query,test}/, name_{train,query,test}.txt, VVVV_cCCC_0_0.jpg;
                     image_test holds both cameras, so every query has a same-camera image of its
                     own vehicle in the gallery, which the junk rule must ignore
    vehicleid        image/<7 digits>.jpg, train_test_split/train_list.txt and test_list_800,
                     _1600, _2400 with the first third, two thirds and all evaluation vehicles
                     (fewer than their names say; the loader does not count them)
    veriwild         images/<vid>/<img>.jpg, train_test_split/{train_list, test_N, test_N_query}
                     .txt with nested thirds as above (test_N lists both cameras, the loader
                     drops the query entries from the gallery), train_test_split/vehicle_info.txt
    folder           images/<khoa name>.jpg and FOLDER_CSV (path,pid,camid,split; pid the
                     identity's name, which the loader numbers in sorted order)

Pytest fixtures (tests/conftest.py, session-scoped, built once per session; names are stable):
    khoa_sample      the KhoaSample the trees are built from (60 training, 30 test vehicles,
                     10 distractor vehicles)
    khoa_trees       {"uav_veid", "uav_veid_labels", "veri776", "vehicleid", "veriwild",
                     "folder"} -> the tree's root (a Path)
    khoa_folder_csv  the folder tree's CSV (khoa_trees["folder"] / FOLDER_CSV)

Images are copies, not hard links: a test that rewrites an image of a tree must not reach the
shared sample, and through a hard link it would wherever the tests may write there (as root).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

KHOA = Path(__file__).resolve().parents[2] / "shared" / "data" / "khoa-vehicle-reid"
LAYOUTS = ("uav_veid", "uav_veid_labels", "veri776", "vehicleid", "veriwild", "folder")
FOLDER_CSV = "khoa.csv"
TYPE_BASE = {"bus": 0, "car": 1000, "motorcycle": 2000, "truck": 3000}  # NNNN < 1000 per type
VIEW_FILE = "train_view_label(front rear left right).txt"
# The photographs carry no view labels: both cameras film the traffic from behind, cam2 straight
# and cam1 obliquely. The UAV-VeID view file therefore holds a placeholder derived from the
# camera (cam1 = left, cam2 = rear, one-hot in front rear left right order): it exercises the
# reading of a view file, it is not a label to learn viewpoints from.
PLACEHOLDER_VIEW = {1: "0 0 1 0", 2: "0 1 0 0"}


@dataclass(frozen=True)
class Vehicle:
    name: str  # the sample's identity, e.g. car_0088
    pid: int  # TYPE_BASE[type] + NNNN
    kind: str  # bus, car, motorcycle or truck

    def photo(self, cam: int, source: Path = KHOA) -> Path:
        return source / "images" / "train" / f"{self.name}_cam{cam}.jpg"


@dataclass(frozen=True)
class KhoaSample:
    train: tuple[Vehicle, ...]  # from train.txt
    test: tuple[Vehicle, ...]  # from val.txt: query camera 1, gallery camera 2
    distractors: tuple[Vehicle, ...]  # from train.txt, not in `train`: UAV-VeID's distractors/
    source: Path = KHOA


def _vehicles(listing: Path) -> list[Vehicle]:
    """The vehicles of train.txt or val.txt in id order; each must have both photographs."""
    names = listing.read_text().split()
    cams: dict[str, set[str]] = {}
    for n in names:
        ident, _, cam = n.removesuffix(".jpg").rpartition("_")
        cams.setdefault(ident, set()).add(cam)
    out = []
    for ident, seen in cams.items():
        if seen != {"cam1", "cam2"}:
            raise ValueError(f"{listing}: {ident} has photographs {sorted(seen)}; expected "
                             "cam1 and cam2")
        kind, _, number = ident.partition("_")
        out.append(Vehicle(ident, TYPE_BASE[kind] + int(number), kind))
    return sorted(out, key=lambda v: v.pid)


def _spread(items: list, n: int | None) -> list:
    """n items evenly spaced over `items` (sorted by id, so every vehicle type is picked);
    None: all."""
    if n is None:
        return list(items)
    if not 0 <= n <= len(items):
        raise ValueError(f"asked for {n} vehicles; the list has {len(items)}")
    return [items[i * len(items) // n] for i in range(n)]


def sample_vehicles(n_train: int | None = 60, n_test: int | None = 30, n_distractors: int = 10,
                    source: Path = KHOA) -> KhoaSample:
    """Training vehicles from train.txt, test vehicles from val.txt, distractor vehicles from
    train.txt but left out of training (picked first; n_train=None takes the rest)."""
    pool = _vehicles(source / "train.txt")
    distractors = _spread(pool, n_distractors)
    rest = [v for v in pool if v not in distractors]
    return KhoaSample(tuple(_spread(rest, n_train)),
                      tuple(_spread(_vehicles(source / "val.txt"), n_test)),
                      tuple(distractors), source)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _new_tree(root: Path, sample: KhoaSample, layout: str) -> Path:
    """An empty folder with the sample's attribution in it."""
    root.mkdir(parents=True)  # never into an existing folder
    for name in ("LICENSE", "README.md"):
        shutil.copyfile(sample.source / name, root / name)
    _write(root / "NOTICE", [
        "The photographs in this folder are from the Vehicle Re-ID Dataset by Minh Khoa Truong",
        "Nguyen, Thinh Luong Truong and Luan Nguyen Thanh (GitHub",
        "Khoa-Nguyen-Truong/Vehicle-Re-ID-Dataset), Apache License 2.0: see LICENSE and README.md",
        f"(copied from {sample.source}).",
        f"tests/khoa_trees.py arranged them in the {layout} layout for the tests of vscr_core.",
    ])
    return root


def build_uav_veid(root: Path, sample: KhoaSample, naming: str = "readme") -> Path:
    """naming "readme": the dataset README's list names, val and test splits; "labels": the
    UAV-labels/ naming of copies in the wild, test split only."""
    root = _new_tree(root, sample, "UAV-VeID" + (" (UAV-labels)" if naming == "labels" else ""))
    labels = root / "UAV-labels" if naming == "labels" else root
    lists = {  # list file per image folder
        "readme": {"image_train": "train_id_label.txt",
                   "images_query_val": "val_q_label.txt", "images_gallery_val": "val_g_label.txt",
                   "images_query_test": "test_q_label.txt",
                   "images_gallery_test": "test_g_label.txt"},
        "labels": {"image_train": "train_id_label.txt",
                   "images_query_test": "test_query_label.txt",
                   "images_gallery_test": "test_gallery_label.txt"},
    }[naming]
    for folder, listing in lists.items():
        if folder == "image_train":
            photos = [(v, cam) for v in sample.train for cam in (1, 2)]
        else:
            photos = [(v, 1 if folder.startswith("images_query") else 2) for v in sample.test]
        rows = []
        for v, cam in photos:
            src = v.photo(cam, sample.source)
            _copy(src, root / folder / src.name)
            rows.append(f"{src.name} {v.pid}")
        _write(labels / listing, rows)
    _write(labels / VIEW_FILE, [f"{v.name}_cam{cam}.jpg {PLACEHOLDER_VIEW[cam]}"
                                for v in sample.train for cam in (1, 2)])
    for v in sample.distractors:
        for cam in (1, 2):
            src = v.photo(cam, sample.source)
            _copy(src, root / "distractors" / src.name)
    return root


def veri776_name(v: Vehicle, cam: int) -> str:
    return f"{v.pid:04d}_c{cam:03d}_00000000_0.jpg"  # the sample has no time stamps or frames


def build_veri776(root: Path, sample: KhoaSample) -> Path:
    root = _new_tree(root, sample, "VeRi-776")
    splits = {"train": [(v, c) for v in sample.train for c in (1, 2)],
              "query": [(v, 1) for v in sample.test],
              "test": [(v, c) for v in sample.test for c in (1, 2)]}
    for split, photos in splits.items():
        names = []
        for v, cam in photos:
            names.append(veri776_name(v, cam))
            _copy(v.photo(cam, sample.source), root / f"image_{split}" / names[-1])
        _write(root / f"name_{split}.txt", names)
    return root


def _thirds(vehicles: tuple[Vehicle, ...]) -> list[tuple[Vehicle, ...]]:
    """The first third, two thirds and all: the small, medium and large test lists."""
    return [vehicles[: len(vehicles) * k // 3] for k in (1, 2, 3)]


def build_vehicleid(root: Path, sample: KhoaSample) -> Path:
    root = _new_tree(root, sample, "VehicleID")
    image_name = {}  # (pid, cam) -> the list's name: 7 digits, no extension, as VehicleID's
    for v in sample.train + sample.test:
        for cam in (1, 2):
            image_name[v.pid, cam] = f"{len(image_name) + 1:07d}"
            _copy(v.photo(cam, sample.source), root / "image" / f"{image_name[v.pid, cam]}.jpg")

    def rows(vehicles):
        return [f"{image_name[v.pid, cam]} {v.pid}" for v in vehicles for cam in (1, 2)]

    _write(root / "train_test_split" / "train_list.txt", rows(sample.train))
    for size, vehicles in zip((800, 1600, 2400), _thirds(sample.test), strict=True):
        _write(root / "train_test_split" / f"test_list_{size}.txt", rows(vehicles))
    return root


def build_veriwild(root: Path, sample: KhoaSample) -> Path:
    root = _new_tree(root, sample, "VERI-Wild")
    key = {}  # (pid, cam) -> 'vid/img'
    info = ["id/image;Camera ID;Time;Model;Type;Color"]
    for v in sample.train + sample.test:
        for cam in (1, 2):
            key[v.pid, cam] = f"{v.pid:05d}/{len(key) + 1:06d}"
            _copy(v.photo(cam, sample.source), root / "images" / f"{key[v.pid, cam]}.jpg")
            info.append(f"{key[v.pid, cam]};{cam};;;{v.kind};")
    split = root / "train_test_split"
    _write(split / "vehicle_info.txt", info)
    _write(split / "train_list.txt", [key[v.pid, c] for v in sample.train for c in (1, 2)])
    for n, vehicles in zip((3000, 5000, 10000), _thirds(sample.test), strict=True):
        _write(split / f"test_{n}.txt", [key[v.pid, c] for v in vehicles for c in (1, 2)])
        _write(split / f"test_{n}_query.txt", [key[v.pid, 1] for v in vehicles])
    return root


def build_folder(root: Path, sample: KhoaSample) -> Path:
    """images/ and FOLDER_CSV; returns the CSV's path."""
    root = _new_tree(root, sample, "folder (CSV)")
    rows = ["path,pid,camid,split"]
    parts = [(v, c, "train") for v in sample.train for c in (1, 2)]
    parts += [(v, c, "query" if c == 1 else "gallery") for v in sample.test for c in (1, 2)]
    for v, cam, split in parts:
        src = v.photo(cam, sample.source)
        _copy(src, root / "images" / src.name)
        rows.append(f"images/{src.name},{v.name},{cam},{split}")
    _write(root / FOLDER_CSV, rows)
    return root / FOLDER_CSV


def build_trees(base: Path, sample: KhoaSample) -> dict[str, Path]:
    """Every layout under `base` (base/<layout>); layout -> the tree's root."""
    base = Path(base)
    return {
        "uav_veid": build_uav_veid(base / "uav_veid", sample),
        "uav_veid_labels": build_uav_veid(base / "uav_veid_labels", sample, naming="labels"),
        "veri776": build_veri776(base / "veri776", sample),
        "vehicleid": build_vehicleid(base / "vehicleid", sample),
        "veriwild": build_veriwild(base / "veriwild", sample),
        "folder": build_folder(base / "folder", sample).parent,
    }
