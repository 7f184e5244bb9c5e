"""Shared fixtures: tiny data sets generated on the fly, in each on-disk layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (20, 14)) -> None:
    """A small JPEG whose colour depends on `seed` (size = (w, h))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, 3)
    Image.fromarray(np.broadcast_to(rgb, (size[1], size[0], 3)).astype(np.uint8)).save(path)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def snapshot(root: Path) -> dict[str, float]:
    """Every file under root with its modification time: to check nothing was written."""
    return {str(p): p.stat().st_mtime for p in root.rglob("*")}


@pytest.fixture
def uav_veid_tree(tmp_path) -> Path:
    """Train ids 10, 11, 12 (2 images each, views), val ids 20, 21, test id 30, 3 distractors."""
    root = tmp_path / "uav"
    splits = {  # folder: (list file, name prefix, [(id, images)])
        "image_train": ("train_id_label.txt", "train", [(10, 2), (12, 2), (11, 2)]),
        "images_query_val": ("val_q_label.txt", "vq", [(20, 2), (21, 1)]),
        "images_gallery_val": ("val_g_label.txt", "vg", [(20, 1), (21, 1)]),
        "images_query_test": ("test_q_label.txt", "tq", [(30, 3)]),
        "images_gallery_test": ("test_g_label.txt", "tg", [(30, 1)]),
    }
    for folder, (listing, prefix, ids) in splits.items():
        lines = []
        for pid, n in ids:
            for k in range(n):
                name = f"{prefix}_{pid}_{k}.jpg"
                write_image(root / folder / name, pid)
                lines.append(f"{name} {pid}")
        write_lines(root / listing, lines)
    # one unlabelled box, listed with id -1 and skipped
    write_image(root / "image_train" / "junk.jpg")
    with open(root / "train_id_label.txt", "a") as f:
        f.write("junk.jpg -1\n")
    onehot = {0: "1 0 0 0", 1: "0 1 0 0", 2: "0 0 1 0", 3: "0 0 0 1"}
    names = [line.split()[0] for line in (root / "train_id_label.txt").read_text().splitlines()]
    write_lines(root / "train_view_label(front rear left right).txt",
                [f"{n} {onehot[i % 4]}" for i, n in enumerate(names[:6])])
    for k in range(3):
        write_image(root / "distractors" / f"d{k}.jpg", 100 + k)
    return root


@pytest.fixture
def veri776_tree(tmp_path) -> Path:
    """Train ids 5, 2 (cameras 1, 2); test ids 7, 9: query 2 images, gallery 4."""
    root = tmp_path / "veri"
    files = {
        "train": ["0005_c001_00016450_0.jpg", "0005_c002_00016460_0.jpg",
                  "0002_c003_00000001_1.jpg", "0002_c001_00000002_0.jpg"],
        "query": ["0007_c004_00000100_0.jpg", "0009_c011_00000200_0.jpg"],
        "test": ["0007_c004_00000101_0.jpg", "0007_c005_00000102_0.jpg",
                 "0009_c012_00000201_0.jpg", "0009_c020_00000202_0.jpg"],
    }
    for split, names in files.items():
        for i, n in enumerate(names):
            write_image(root / f"image_{split}" / n, i)
        write_lines(root / f"name_{split}.txt", names)
    return root


@pytest.fixture
def vehicleid_tree(tmp_path) -> Path:
    """Train ids 3, 1; test lists 800/1600/2400 each with ids 50 (3 images) and 51 (2)."""
    root = tmp_path / "vid"
    train = [("0000001", 3), ("0000002", 3), ("0000003", 1), ("0000004", 1)]
    test = [("0000010", 50), ("0000011", 50), ("0000012", 50), ("0000013", 51), ("0000014", 51)]
    for i, (name, _) in enumerate(train + test):
        write_image(root / "image" / f"{name}.jpg", i)
    write_lines(root / "train_test_split" / "train_list.txt", [f"{n} {v}" for n, v in train])
    for size in (800, 1600, 2400):
        write_lines(root / "train_test_split" / f"test_list_{size}.txt",
                    [f"{n} {v}" for n, v in test])
    return root


@pytest.fixture
def veriwild_tree(tmp_path) -> Path:
    """Train ids 1, 2; small/medium/large test lists: id 8 with query 1 and gallery 2 images."""
    root = tmp_path / "wild"
    images = {"00001": ["000001", "000002"], "00002": ["000003", "000004"],
              "00008": ["000010", "000011", "000012"]}
    info = ["id/image;Camera ID;Time;Model;Type;Color"]
    for vid, imgs in images.items():
        for k, img in enumerate(imgs):
            write_image(root / "images" / vid / f"{img}.jpg", k)
            info.append(f"{vid}/{img};{k + 1};2018-03-11 13:55:52;Audi;SUV;white")
    write_lines(root / "train_test_split" / "vehicle_info.txt", info)
    write_lines(root / "train_test_split" / "train_list.txt",
                ["00001/000001", "00001/000002", "00002/000003", "00002/000004"])
    for n in (3000, 5000, 10000):
        write_lines(root / "train_test_split" / f"test_{n}_query.txt", ["00008/000010"])
        write_lines(root / "train_test_split" / f"test_{n}.txt",
                    ["00008/000010", "00008/000011", "00008/000012"])
    return root


@pytest.fixture
def folder_tree(tmp_path) -> Path:
    """crops/*.jpg and crops.csv with a header: train ids a, b; query/gallery id c; views."""
    root = tmp_path / "crops"
    rows = ["path,pid,camid,view,split,note",
            "a1.jpg,a,1,front,train,x", "a2.jpg,a,2,left,train,", "b1.jpg,b,1,rear,train,",
            "b2.jpg,b,2,,train,", "c1.jpg,c,1,right,query,", "c2.jpg,c,2,front,gallery,"]
    for i, row in enumerate(rows[1:]):
        write_image(root / row.split(",")[0], i)
    write_lines(root / "crops.csv", rows)
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module's tiny models (beside another busy process two threads
    wait on each other several times slower), and the caller's thread count back afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_synth(tmp_path_factory) -> Path:
    """The smoke preset of the synthetic generator, built once per test session."""
    from vscr_core.data.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synth") / "smoke", "smoke", seed=0,
                            progress=False)


@pytest.fixture(scope="session")
def notebook_env(smoke_synth, tmp_path_factory):
    """(out_dir, smoke data root): $VSCR_DATA points at a folder whose synth-smoke-s0 is the
    session's smoke tree, and every notebook of the session writes into one output folder, so
    index.html gathers all of them and a model shared by several notebooks trains once."""
    data = tmp_path_factory.mktemp("vscr_data")
    (data / "synth-smoke-s0").symlink_to(smoke_synth, target_is_directory=True)
    old = os.environ.get("VSCR_DATA")
    os.environ["VSCR_DATA"] = str(data)  # the kernel inherits the environment
    yield tmp_path_factory.mktemp("nb_out"), smoke_synth
    if old is None:
        os.environ.pop("VSCR_DATA", None)
    else:
        os.environ["VSCR_DATA"] = old


@pytest.fixture(scope="session")
def run_notebook(notebook_env):
    """run_notebook(name, **parameters) executes notebooks/<name>.ipynb with papermill in the
    smoke profile into the session's output folder and returns the executed notebook (JSON)."""
    papermill = pytest.importorskip("papermill")
    out_dir, _ = notebook_env

    def execute(name: str, **parameters) -> dict:
        out = out_dir / f"{name}.ipynb"
        papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out),
                                   kernel_name="python3", progress_bar=False,
                                   parameters={"profile": "smoke", "out_dir": str(out_dir),
                                               **parameters})
        return json.loads(out.read_text())

    return execute


def printed(notebook: dict) -> str:
    """Everything an executed notebook printed (stream outputs)."""
    return "".join("".join(o.get("text", "")) for c in notebook["cells"]
                   for o in c.get("outputs", []))


# ------------------------------------------------------------- real photographs (khoa_trees.py)


@pytest.fixture(scope="session")
def khoa_sample():
    """The Khoa vehicles the real-photo trees hold (tests/khoa_trees.py: 60 training vehicles
    from train.txt, 30 test vehicles from val.txt, 10 distractor vehicles)."""
    from khoa_trees import KHOA, sample_vehicles

    if not KHOA.is_dir():
        pytest.skip(f"real-photo sample not present at {KHOA}")
    return sample_vehicles()


@pytest.fixture(scope="session")
def khoa_trees(khoa_sample, tmp_path_factory) -> dict[str, Path]:
    """{"uav_veid", "uav_veid_labels", "veri776", "vehicleid", "veriwild", "folder"} -> root
    of a tree of khoa_sample in that layout, built once per session (see tests/khoa_trees.py)."""
    from khoa_trees import build_trees

    return build_trees(tmp_path_factory.mktemp("khoa"), khoa_sample)


@pytest.fixture(scope="session")
def khoa_folder_csv(khoa_trees) -> Path:
    """The CSV (path,pid,camid,split) of khoa_trees["folder"]."""
    from khoa_trees import FOLDER_CSV

    return khoa_trees["folder"] / FOLDER_CSV
