"""Every loader, `vscr train` (smoke, one epoch) and `vscr eval` on real photographs: the Khoa
sample in each on-disk layout (tests/khoa_trees.py; fixtures khoa_sample, khoa_trees and
khoa_folder_csv in conftest.py). Training vehicles come from train.txt, test vehicles from
val.txt, query = camera 1 and gallery = camera 2 (VeRi-776's gallery: both cameras)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from khoa_trees import LAYOUTS
from PIL import Image

from vscr_core.cli import main
from vscr_core.data import UNKNOWN, DataError, load_dataset

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest


DISPLAY = {"uav_veid": "UAV-VeID", "veri776": "VeRi-776", "vehicleid": "VehicleID",
           "veriwild": "VERI-Wild"}


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def photo_of(khoa_sample):
    """photo_of(path) -> (vehicle, camera) of the sample photograph that file is a copy of."""
    known = {_digest(v.photo(cam, khoa_sample.source)): (v, cam)
             for v in khoa_sample.train + khoa_sample.test + khoa_sample.distractors
             for cam in (1, 2)}
    # every photograph distinct, so a file's content says which one it is
    assert len(known) == 2 * len(khoa_sample.train + khoa_sample.test + khoa_sample.distractors)
    return lambda path: known[_digest(path)]


def check_train(ds, sample, photo_of, order=lambda v: v.pid):
    """Both photographs of every training vehicle, ids relabelled 0..N-1 in `order` of the
    vehicles (the loader sorts the ids it reads)."""
    src = [photo_of(s.path) for s in ds.train]
    assert sorted((v.name, cam) for v, cam in src) == sorted(
        (v.name, cam) for v in sample.train for cam in (1, 2))
    rank = {v.name: i for i, v in enumerate(sorted(sample.train, key=order))}
    assert [s.pid for s in ds.train] == [rank[v.name] for v, _ in src]
    assert ds.num_train_pids == len(sample.train) == 60


def check_eval(samples, vehicles, photo_of, cams, pid=lambda v: v.pid):
    """`samples` are the photographs of `vehicles` from `cams`, with the vehicles' ids, and the
    real photographs differ in size."""
    src = [photo_of(s.path) for s in samples]
    assert sorted((v.name, cam) for v, cam in src) == sorted(
        (v.name, cam) for v in vehicles for cam in cams)
    assert [s.pid for s in samples] == [pid(v) for v, _ in src]
    sizes = {Image.open(s.path).size for s in samples}
    assert len(sizes) > len(samples) // 2  # real crops: almost every one its own size


# ----------------------------------------------------------------------------- loaders


@pytest.mark.parametrize("split", ["val", "test"])
def test_uav_veid_readme_naming(khoa_trees, khoa_sample, photo_of, split):
    ds = load_dataset("uav_veid", khoa_trees["uav_veid"], split=split)
    assert ds.name == f"uav_veid-{split}"
    check_train(ds, khoa_sample, photo_of)
    check_eval(ds.query, khoa_sample.test, photo_of, [1])
    check_eval(ds.gallery, khoa_sample.test, photo_of, [2])
    # no camera ids: every query has exactly one true match, its vehicle's camera-2 photograph
    assert all(s.camid == UNKNOWN for s in ds.query + ds.gallery)
    # the placeholder views of the view file (khoa_trees.PLACEHOLDER_VIEW): cam1 left, cam2 rear
    assert ds.num_views == 4
    assert [s.view for s in ds.train] == [2 if photo_of(s.path)[1] == 1 else 1 for s in ds.train]
    assert sorted(photo_of(s.path)[0].name for s in ds.distractors) == sorted(
        2 * [v.name for v in khoa_sample.distractors])
    assert all(s.pid == UNKNOWN for s in ds.distractors)
    assert len(load_dataset("uav_veid", khoa_trees["uav_veid"], split=split,
                            distractors=5).distractors) == 5


def test_uav_veid_labels_naming(khoa_trees, khoa_sample, photo_of):
    root = khoa_trees["uav_veid_labels"]
    assert not (root / "train_id_label.txt").exists()  # only the UAV-labels/ naming
    ds = load_dataset("uav_veid", root, split="test")
    check_train(ds, khoa_sample, photo_of)
    check_eval(ds.query, khoa_sample.test, photo_of, [1])
    check_eval(ds.gallery, khoa_sample.test, photo_of, [2])
    assert ds.num_views == 4 and UNKNOWN not in {s.view for s in ds.train}  # UAV-labels/ views
    assert len(ds.distractors) == 2 * len(khoa_sample.distractors)
    # copies in the wild have no validation split
    with pytest.raises(DataError, match=r"images_query_val: missing folder; .*UAV-VeID"):
        load_dataset("uav_veid", root, split="val")


def test_veri776(khoa_trees, khoa_sample, photo_of):
    ds = load_dataset("veri776", khoa_trees["veri776"])
    check_train(ds, khoa_sample, photo_of)
    check_eval(ds.query, khoa_sample.test, photo_of, [1])
    check_eval(ds.gallery, khoa_sample.test, photo_of, [1, 2])
    # camera ids from the names: each query's own camera-1 photograph is in the gallery too,
    # the image the same-camera junk rule must ignore; the other camera holds its true match
    assert [s.camid for s in ds.query] == [photo_of(s.path)[1] for s in ds.query] == [1] * 30
    assert [s.camid for s in ds.gallery] == [photo_of(s.path)[1] for s in ds.gallery]
    for q in ds.query:
        same = [g for g in ds.gallery if g.pid == q.pid]
        assert sorted(g.camid for g in same) == [1, 2]
        assert _digest(next(g.path for g in same if g.camid == 1)) == _digest(q.path)


def test_vehicleid_sizes_and_draws(khoa_trees, khoa_sample, photo_of):
    root = khoa_trees["vehicleid"]
    ds = load_dataset("vehicleid", root)  # test_list_2400: every test vehicle
    check_train(ds, khoa_sample, photo_of)
    assert all(s.camid == UNKNOWN for s in ds.train + ds.query + ds.gallery)
    for size, n in ((800, 10), (1600, 20), (2400, 30)):
        draws = [load_dataset("vehicleid", root, test_size=size, draw=d) for d in (0, 1, 2)]
        for d in draws:
            # one random photograph per vehicle in the gallery, the other one the query
            check_eval(d.query + d.gallery, khoa_sample.test[:n], photo_of, [1, 2])
            assert len(d.query) == len(d.gallery) == n
            assert {s.pid for s in d.query} == {s.pid for s in d.gallery}
        # the draws differ: a camera-1 gallery in one is a camera-1 query in another
        galleries = [sorted(photo_of(s.path)[1] for s in d.gallery) for d in draws]
        assert len({tuple(g) for g in galleries}) > 1


def test_veriwild_subsets(khoa_trees, khoa_sample, photo_of):
    root = khoa_trees["veriwild"]
    for subset, n in (("small", 10), ("medium", 20), ("large", 30)):
        ds = load_dataset("veriwild", root, subset=subset)
        check_train(ds, khoa_sample, photo_of)
        check_eval(ds.query, khoa_sample.test[:n], photo_of, [1])
        # test_N.txt lists both cameras; the loader drops the query entries from the gallery
        check_eval(ds.gallery, khoa_sample.test[:n], photo_of, [2])
        assert [s.camid for s in ds.query + ds.gallery] == [
            photo_of(s.path)[1] for s in ds.query + ds.gallery]  # from vehicle_info.txt


def test_folder_csv(khoa_trees, khoa_folder_csv, khoa_sample, photo_of):
    ds = load_dataset("folder", khoa_trees["folder"], csv=khoa_folder_csv)
    # pids are the identities' names, numbered in sorted order of every name in the CSV
    number = {name: i for i, name in enumerate(sorted(
        v.name for v in khoa_sample.train + khoa_sample.test))}
    check_train(ds, khoa_sample, photo_of, order=lambda v: v.name)
    check_eval(ds.query, khoa_sample.test, photo_of, [1], pid=lambda v: number[v.name])
    check_eval(ds.gallery, khoa_sample.test, photo_of, [2], pid=lambda v: number[v.name])
    assert {s.camid for s in ds.query} == {1} and {s.camid for s in ds.gallery} == {2}
    assert ds.num_views == 0 and not ds.distractors


def test_trees_carry_the_attribution(khoa_trees, khoa_sample):
    for root in khoa_trees.values():
        assert (root / "LICENSE").read_bytes() == (khoa_sample.source / "LICENSE").read_bytes()
        assert (root / "README.md").is_file() and "Apache" in (root / "NOTICE").read_text()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("tree", LAYOUTS)
def test_wrong_layout_names_the_layout_and_the_first_missing_file(khoa_trees, tree):
    root = khoa_trees[tree]
    for layout, display in DISPLAY.items():
        if tree.startswith(layout):
            continue
        with pytest.raises(DataError) as err:
            load_dataset(layout, root)
        message = str(err.value)
        missing = Path(message.split(": ", 1)[0])
        assert display in message, message
        assert missing.is_relative_to(root) and missing != root, message
        assert not missing.exists(), message


def test_folder_csv_with_a_header_and_no_rows(khoa_trees, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("path,pid,camid,split\n")
    with pytest.raises(DataError, match=r"empty.csv: a header and no rows"):
        load_dataset("folder", khoa_trees["folder"], csv=empty)
    with pytest.raises(SystemExit, match=r"empty.csv: a header and no rows"):
        main(["train", "--profile", "smoke", "--out", str(tmp_path / "run"), "--quiet", "--set",
              "data.dataset=folder", f"data.root={khoa_trees['folder']}", f"data.csv={empty}"])
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# ----------------------------------------------------------------------------- vscr train, eval


def train_command(khoa_trees, khoa_folder_csv, dataset, out, root=None) -> list[str]:
    settings = [f"data.dataset={dataset}", f"data.root={root or khoa_trees[dataset]}",
                "model.view_adversary=False", "model.dilations=1,", "train.epochs=1"]
    settings += [f"data.csv={khoa_folder_csv}"] if dataset == "folder" else []
    return ["train", "--profile", "smoke", "--out", str(out), "--quiet", "--set", *settings]


def eval_command(out, *extra) -> list[str]:
    return ["eval", "--checkpoint", str(out / "checkpoint.pt"), *extra]


# data set -> the eval command's protocol, queries it evaluates (VehicleID: in each of its 10
# gallery draws)
EVALS = {
    "uav_veid": (["--protocol", "split=test"], 30),
    "veri776": ([], 30),
    "vehicleid": ([], 30),
    "veriwild": (["--protocol", "subset=large"], 30),
    "folder": ([], 30),
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", EVALS)
def test_train_and_eval_commands(khoa_trees, khoa_folder_csv, dataset, tmp_path, capsys):
    main(train_command(khoa_trees, khoa_folder_csv, dataset, tmp_path))
    assert capsys.readouterr().out.strip() == f"checkpoint {tmp_path / 'checkpoint.pt'}"

    protocol, queries = EVALS[dataset]
    main(eval_command(tmp_path, *protocol))
    m = json.loads(capsys.readouterr().out)
    assert 0.0 <= m["rank1"] <= m["rank5"] <= m["rank10"] <= 1.0 and 0.0 < m["mAP"] <= 1.0
    assert m["num_queries"] == queries
    if dataset == "vehicleid":  # mean and spread over the gallery draws
        assert m["data"] == "vehicleid-2400-d0" and 0.0 <= m["rank1_std"] <= 0.5
        assert m["num_draws"] == 10
        return
    assert m["num_skipped"] == 0
    if dataset == "veri776":
        # each query's own copy (distance 0) is in the gallery: only the same-camera junk rule
        # keeps rank-1 below 1 after one epoch at 32 x 32 px
        assert m["rank1"] < 1.0
    if dataset == "uav_veid":
        # one true match per query: AP = 1 / its rank, so mAP lies between rank-1 and 1
        assert m["data"] == "uav_veid-test" and m["rank1"] <= m["mAP"]
        # the same model on the UAV-labels/ copy with its 20 distractors: they can only push
        # true matches down, and beside 30 gallery images some do after one epoch
        main(eval_command(tmp_path, *protocol, "--distractors", "20",
                          "--set", f"data.root={khoa_trees['uav_veid_labels']}"))
        d = json.loads(capsys.readouterr().out)
        assert d["num_queries"] == 30 and d["num_skipped"] == 0
        assert d["rank1"] <= m["rank1"] and d["rank10"] <= m["rank10"] and d["mAP"] < m["mAP"]


def test_train_on_a_uav_labels_copy(khoa_trees, khoa_folder_csv, tmp_path):
    main(train_command(khoa_trees, khoa_folder_csv, "uav_veid", tmp_path,
                       root=khoa_trees["uav_veid_labels"]))
