"""The five on-disk layouts: counts, ids, cameras, views, protocols, and errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import snapshot, write_image, write_lines

from vscr_core.data import (
    UNKNOWN,
    DataError,
    dataset_statistics,
    load_dataset,
    with_view_labels,
)
from vscr_core.data.vehicleid import vehicleid_split

KHOA = Path(__file__).resolve().parents[2] / "shared" / "data" / "khoa-vehicle-reid"

# ----------------------------------------------------------------------------- UAV-VeID


def test_uav_veid_val_and_test(uav_veid_tree):
    before = snapshot(uav_veid_tree)
    ds = load_dataset("uav_veid", uav_veid_tree, split="val")
    assert len(ds.train) == 6  # the id -1 line is skipped
    assert sorted({s.pid for s in ds.train}) == [0, 1, 2]
    # relabelled in sorted order of the original ids 10, 11, 12
    by_name = {Path(s.path).name: s.pid for s in ds.train}
    assert by_name["train_10_0.jpg"] == 0 and by_name["train_12_1.jpg"] == 2
    assert [s.view for s in ds.train] == [0, 1, 2, 3, 0, 1]  # the one-hot file, in list order
    assert ds.num_views == 4
    assert len(ds.query) == 3 and len(ds.gallery) == 2
    assert {s.pid for s in ds.gallery} == {20, 21}  # query/gallery keep the original ids
    assert all(s.camid == UNKNOWN for s in ds.query + ds.gallery)
    assert len(ds.distractors) == 3 and all(s.pid == UNKNOWN for s in ds.distractors)
    test = load_dataset("uav_veid", uav_veid_tree, split="test", distractors=1)
    assert len(test.query) == 3 and [s.pid for s in test.gallery] == [30]
    assert len(test.distractors) == 1
    assert snapshot(uav_veid_tree) == before  # nothing written into the user's folder


def test_uav_veid_wild_naming_and_no_views(uav_veid_tree):
    labels = uav_veid_tree / "UAV-labels"
    labels.mkdir()
    (uav_veid_tree / "train_id_label.txt").rename(labels / "train_id_label.txt")
    (uav_veid_tree / "test_q_label.txt").rename(labels / "test_query_label.txt")
    (uav_veid_tree / "test_g_label.txt").rename(labels / "test_gallery_label.txt")
    (uav_veid_tree / "train_view_label(front rear left right).txt").unlink()
    ds = load_dataset("uav_veid", uav_veid_tree, split="test")
    assert len(ds.train) == 6 and ds.num_views == 0
    assert all(s.view == UNKNOWN for s in ds.train)


def test_uav_veid_bad_input(uav_veid_tree):
    with pytest.raises(DataError, match="missing folder"):
        load_dataset("uav_veid", uav_veid_tree / "nope")
    with pytest.raises(ValueError, match="'val' or 'test'"):
        load_dataset("uav_veid", uav_veid_tree, split="train")
    q = uav_veid_tree / "val_q_label.txt"
    good = q.read_text()
    q.write_text(good + "missing.jpg 20\n")
    with pytest.raises(DataError, match=r"val_q_label.txt:4: names .*missing.jpg"):
        load_dataset("uav_veid", uav_veid_tree)
    q.write_text(good + "onlyonecolumn\n")
    with pytest.raises(DataError, match=r"val_q_label.txt:4: 1 column"):
        load_dataset("uav_veid", uav_veid_tree)
    q.write_text(good + "vq_20_0.jpg twenty\n")
    with pytest.raises(DataError, match=r"val_q_label.txt:4: identity 'twenty'"):
        load_dataset("uav_veid", uav_veid_tree)
    # an identity of the training split in the val queries
    write_image(uav_veid_tree / "images_query_val" / "leak.jpg")
    q.write_text(good + "leak.jpg 11\n")
    with pytest.raises(DataError, match="identity 11 is in train and in query"):
        load_dataset("uav_veid", uav_veid_tree)
    q.write_text(good)
    (uav_veid_tree / "val_g_label.txt").unlink()
    with pytest.raises(DataError, match="val_g_label.txt"):
        load_dataset("uav_veid", uav_veid_tree)


def test_uav_veid_bad_view_file(uav_veid_tree):
    views = uav_veid_tree / "train_view_label(front rear left right).txt"
    lines = views.read_text().splitlines()
    write_lines(views, lines + ["train_10_0.jpg 1 1 0 0"])
    with pytest.raises(DataError, match=r":7: 2 views set; expected one-hot"):
        load_dataset("uav_veid", uav_veid_tree)
    write_lines(views, lines + ["train_10_0.jpg 1 0 0"])
    with pytest.raises(DataError, match=r":7: expected '<name> f r l r'"):
        load_dataset("uav_veid", uav_veid_tree)
    write_lines(views, lines + ["stranger.jpg 1 0 0 0"])
    with pytest.raises(DataError, match=r":7: stranger.jpg is not in the training list"):
        load_dataset("uav_veid", uav_veid_tree)


# ----------------------------------------------------------------------------- VeRi-776


def test_veri776(veri776_tree):
    ds = load_dataset("veri776", veri776_tree)
    assert [s.pid for s in ds.train] == [1, 1, 0, 0]  # ids 5, 2 -> sorted 2, 5 -> 0, 1
    assert [s.camid for s in ds.train] == [1, 2, 3, 1]
    assert [(s.pid, s.camid) for s in ds.query] == [(7, 4), (9, 11)]
    assert [s.camid for s in ds.gallery] == [4, 5, 12, 20]
    assert ds.num_views == 0
    # without the name lists, the folders are listed
    for split in ("train", "query", "test"):
        (veri776_tree / f"name_{split}.txt").unlink()
    assert len(load_dataset("veri776", veri776_tree).gallery) == 4


def test_veri776_bad_input(veri776_tree):
    names = veri776_tree / "name_query.txt"
    names.write_text(names.read_text() + "vehicle7.jpg\n")
    with pytest.raises(DataError, match=r"name_query.txt:3: image name 'vehicle7.jpg' does not"):
        load_dataset("veri776", veri776_tree)
    # VeRi-776's queries are copies of test images (same name, other folder): that is allowed,
    # the evaluator's same-camera junk rule drops the copy
    names.write_text("0007_c004_00000101_0.jpg\n")
    write_image(veri776_tree / "image_query" / "0007_c004_00000101_0.jpg")
    assert len(load_dataset("veri776", veri776_tree).query) == 1
    # a training identity in the gallery is not
    write_image(veri776_tree / "image_test" / "0005_c009_00000000_0.jpg")
    test = veri776_tree / "name_test.txt"
    test.write_text(test.read_text() + "0005_c009_00000000_0.jpg\n")
    with pytest.raises(DataError, match="identity 5 is in train and in gallery"):
        load_dataset("veri776", veri776_tree)
    import shutil

    shutil.rmtree(veri776_tree / "image_query")
    with pytest.raises(DataError, match="image_query: missing folder"):
        load_dataset("veri776", veri776_tree)


def test_uav_veid_duplicate_name_across_splits(uav_veid_tree):
    write_image(uav_veid_tree / "images_gallery_val" / "train_10_0.jpg")
    g = uav_veid_tree / "val_g_label.txt"
    g.write_text(g.read_text() + "train_10_0.jpg 21\n")
    with pytest.raises(DataError, match="train_10_0.jpg is in the train and the gallery lists"):
        load_dataset("uav_veid", uav_veid_tree)


# ----------------------------------------------------------------------------- VehicleID


def test_vehicleid_protocol(vehicleid_tree):
    ds = load_dataset("vehicleid", vehicleid_tree, test_size=800, draw=0)
    assert sorted(s.pid for s in ds.train) == [0, 0, 1, 1]  # ids 1, 3
    assert len(ds.gallery) == 2 and sorted(s.pid for s in ds.gallery) == [50, 51]
    assert len(ds.query) == 3
    # query + gallery are always the whole test list; the draw only moves images between them
    draws = [load_dataset("vehicleid", vehicleid_tree, test_size=800, draw=d) for d in range(10)]
    for d in draws:
        assert sorted(s.path for s in d.query + d.gallery) == sorted(
            s.path for s in ds.query + ds.gallery)
    galleries = {tuple(s.path for s in d.gallery) for d in draws}
    assert len(galleries) > 1  # draws differ
    again = load_dataset("vehicleid", vehicleid_tree, test_size=800, draw=3)
    assert again.gallery == draws[3].gallery  # and are reproducible
    assert all(s.camid == UNKNOWN for s in ds.query)
    # the evaluator's draw d over the test list in path order is the loader's draw d
    test = sorted(ds.query + ds.gallery)
    for d, drawn in enumerate(draws):
        gallery, query = vehicleid_split([s.pid for s in test], seed=0, draw=d)
        assert [test[i] for i in gallery] == drawn.gallery
        assert sorted(test[i] for i in query) == sorted(drawn.query)


def test_vehicleid_bad_input(vehicleid_tree):
    with pytest.raises(ValueError, match="test_size"):
        load_dataset("vehicleid", vehicleid_tree, test_size=1000)
    with pytest.raises(ValueError, match="draw"):
        load_dataset("vehicleid", vehicleid_tree, draw=10)
    lst = vehicleid_tree / "train_test_split" / "test_list_2400.txt"
    good = lst.read_text()
    lst.write_text(good + "0000099 52\n")
    with pytest.raises(DataError, match=r"test_list_2400.txt:6: names .*0000099.jpg"):
        load_dataset("vehicleid", vehicleid_tree)
    # the same image in train and test
    lst.write_text(good + "0000001 52\n")
    with pytest.raises(DataError, match="0000001.jpg is listed in train and in"):
        load_dataset("vehicleid", vehicleid_tree)
    lst.write_text(good + "0000003 1\n")  # id 1 is a training id
    with pytest.raises(DataError, match="listed in train|identity 1 is in train"):
        load_dataset("vehicleid", vehicleid_tree)
    (vehicleid_tree / "train_test_split" / "train_list.txt").unlink()
    with pytest.raises(DataError, match="train_list.txt: missing file"):
        load_dataset("vehicleid", vehicleid_tree)


# ----------------------------------------------------------------------------- VERI-Wild


@pytest.mark.parametrize("subset", ["small", "medium", "large"])
def test_veriwild(veriwild_tree, subset):
    ds = load_dataset("veriwild", veriwild_tree, subset=subset)
    assert [s.pid for s in ds.train] == [0, 0, 1, 1]
    assert [s.camid for s in ds.train] == [1, 2, 1, 2]
    assert [(s.pid, s.camid) for s in ds.query] == [(8, 1)]
    assert [(s.pid, s.camid) for s in ds.gallery] == [(8, 2), (8, 3)]  # query entry dropped


def test_veriwild_info_without_header_and_bad_rows(veriwild_tree):
    info = veriwild_tree / "train_test_split" / "vehicle_info.txt"
    lines = info.read_text().splitlines()
    write_lines(info, lines[1:])  # no header
    assert len(load_dataset("veriwild", veriwild_tree).train) == 4
    write_lines(info, lines[1:] + ["00009/000099"])
    with pytest.raises(DataError, match=r"vehicle_info.txt:8: expected 'vid/image;camera"):
        load_dataset("veriwild", veriwild_tree)
    write_lines(info, lines[:3])  # images without a camera
    with pytest.raises(DataError, match=r"train_list.txt:3: 00002/000003 has no camera"):
        load_dataset("veriwild", veriwild_tree)
    with pytest.raises(ValueError, match="subset"):
        load_dataset("veriwild", veriwild_tree, subset="huge")


# ----------------------------------------------------------------------------- folder


def test_folder_csv(folder_tree):
    ds = load_dataset("folder", folder_tree, csv=folder_tree / "crops.csv")
    assert [s.pid for s in ds.train] == [0, 0, 1, 1]  # labels a, b
    assert [s.camid for s in ds.train] == [1, 2, 1, 2]
    assert [s.view for s in ds.train] == [0, 2, 1, UNKNOWN]  # front, left, rear, (none)
    assert ds.num_views == 4
    assert [s.pid for s in ds.query] == [2] and [s.view for s in ds.gallery] == [0]


def test_folder_separate_files_without_header(tmp_path, folder_tree):
    write_lines(tmp_path / "train.csv", ["a1.jpg,7", "b1.jpg,9"])
    write_lines(tmp_path / "query.csv", ["c1.jpg,4,1"])
    write_lines(tmp_path / "gallery.csv", ["c2.jpg,4,2"])
    ds = load_dataset("folder", folder_tree, train=tmp_path / "train.csv",
                      query=tmp_path / "query.csv", gallery=tmp_path / "gallery.csv")
    assert [s.pid for s in ds.train] == [0, 1] and ds.num_views == 0
    assert ds.query[0].pid == 4 and ds.gallery[0].camid == 2


def test_folder_bad_input(tmp_path, folder_tree):
    bad = tmp_path / "bad.csv"
    write_lines(bad, ["path,pid,split", "a1.jpg,1,train", "nothere.jpg,1,train"])
    with pytest.raises(DataError, match=r"bad.csv:3: names .*nothere.jpg"):
        load_dataset("folder", folder_tree, csv=bad)
    write_lines(bad, ["path,pid,split", "a1.jpg,1,holdout"])
    with pytest.raises(DataError, match=r"bad.csv:2: split 'holdout'"):
        load_dataset("folder", folder_tree, csv=bad)
    write_lines(bad, ["path,pid,view,split", "a1.jpg,1,upside,train"])
    with pytest.raises(DataError, match=r"bad.csv:2: view 'upside'"):
        load_dataset("folder", folder_tree, csv=bad)
    write_lines(bad, ["path,pid,split", "a1.jpg,1,train", "a1.jpg,2,query"])
    with pytest.raises(DataError, match="a1.jpg is listed in train and in query"):
        load_dataset("folder", folder_tree, csv=bad)
    write_lines(bad, ["path,pid,split", "a1.jpg,1,train", "a2.jpg,1,query"])
    with pytest.raises(DataError, match="identity 1 is in train and in query"):
        load_dataset("folder", folder_tree, csv=bad)
    write_lines(bad, ["a1.jpg"])
    with pytest.raises(DataError, match=r"bad.csv:1: expected path,pid"):
        load_dataset("folder", folder_tree, train=bad)
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("market1501", folder_tree)


@pytest.mark.skipif(not KHOA.is_dir(), reason=f"real-photo sample not present at {KHOA}")
def test_folder_reads_real_photographs(tmp_path):
    """The Khoa Nguyen vehicle ReID sample (ground cameras, Apache-2.0): train on train.txt,
    query = camera 1 and gallery = camera 2 of val.txt. The CSV lives outside the data folder."""
    rows = ["path,pid,camid,split"]
    for listing in ("train", "val"):
        for name in (KHOA / f"{listing}.txt").read_text().split():
            ident, cam = name.rsplit("_", 1)
            cam = int(cam[3])
            split = "train" if listing == "train" else ("query" if cam == 1 else "gallery")
            rows.append(f"images/train/{name},{ident},{cam},{split}")
    write_lines(tmp_path / "khoa.csv", rows)
    ds = load_dataset("folder", KHOA, csv=tmp_path / "khoa.csv")
    assert len(ds.train) == 810 and ds.num_train_pids == 405
    assert len(ds.query) == len(ds.gallery) == 102
    assert {s.pid for s in ds.query} == {s.pid for s in ds.gallery}
    stats = dataset_statistics(ds, max_sized=50)
    assert 30 <= stats["train"]["box_w"]["min"] and stats["train"]["box_w"]["max"] <= 585


# ----------------------------------------------------------------------------- shared


def test_statistics(uav_veid_tree):
    st = dataset_statistics(load_dataset("uav_veid", uav_veid_tree))
    assert st["train"]["ids"] == 3 and st["train"]["images"] == 6
    assert st["train"]["images_per_id"]["histogram"] == {2: 3}
    assert st["train"]["views"] == {"front": 2, "rear": 2, "left": 1, "right": 1, "unknown": 0}
    assert st["query"]["box_w"] == {"min": 20, "median": 20.0, "max": 20}
    assert st["distractors"]["images"] == 3 and st["distractors"]["ids"] == 0


def test_with_view_labels(tmp_path, veri776_tree):
    ds = load_dataset("veri776", veri776_tree)
    views = [2, 1, -1, -1]  # -1: the classifier left it unknown
    f = write_lines(tmp_path / "views.csv", ["path,view,num_views", *(
        f"{s.path},{v},3" for s, v in zip(ds.train, views, strict=True))])
    labelled = with_view_labels(ds, f)
    assert labelled.num_views == 3 and [s.view for s in labelled.train] == views
    write_lines(f, ["path,view,num_views", f"{ds.train[0].path},2,3"])
    with pytest.raises(DataError, match=f"no view for the training image {ds.train[1].path}"):
        with_view_labels(ds, f)
    write_lines(f, ["path,view,num_views", f"{ds.train[0].path},3,3"])
    with pytest.raises(DataError, match=r"views.csv:2: view 3 of 3 classes"):
        with_view_labels(ds, f)


@pytest.mark.parametrize("layout,kwargs", [
    ("veri776_tree", {}), ("vehicleid_tree", {"test_size": 1600, "draw": 2}),
    ("veriwild_tree", {"subset": "medium"}), ("folder_tree", {"csv": "crops.csv"}),
])
def test_loading_and_reading_write_nothing(request, layout, kwargs):
    from vscr_core.data.transforms import ImageDataset

    root = request.getfixturevalue(layout)
    kwargs = {k: root / v if k == "csv" else v for k, v in kwargs.items()}
    before = snapshot(root)
    ds = load_dataset(layout.removesuffix("_tree"), root, **kwargs)
    images = ImageDataset(ds.train + ds.query + ds.gallery, (8, 8))
    assert len([images[i] for i in range(len(images))]) == len(images) > 0
    assert snapshot(root) == before
