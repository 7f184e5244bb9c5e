"""Data sets without view labels, the paper's way: a VSCR run on the VeRi-776 tree of real
photographs stops before training and names the two commands that label it; after
`vscr viewpoint train` and `vscr viewpoint label` it trains. Also: each data set's description
in the registry, and Table 3's rows by view classes."""

from __future__ import annotations

import os

import pytest
import torch

from vscr_core.cli import main
from vscr_core.config import PROFILES, profile
from vscr_core.data import DATASETS, dataset_spec
from vscr_core.paper.notebook import NotebookRun
from vscr_core.paper.variants import table3_variants, variant_config


def test_every_dataset_has_one_description():
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.junk in ("none", "same_camera")
    assert [n for n, s in DATASETS.items() if s.random_erasing] == [
        "veri776", "vehicleid", "veriwild"]  # the paper's augmentation, not on UAV-VeID
    assert {n: s.num_views for n, s in DATASETS.items()} == {
        "synth": 4, "uav_veid": 4, "veri776": 3, "vehicleid": 2, "veriwild": 3, "folder": None}
    assert dataset_spec("folder").junk_rule([0, 1]) == "same_camera"
    assert dataset_spec("folder").junk_rule([0, -1]) == "none"  # a camera unknown: no rule
    with pytest.raises(ValueError, match="unknown data set 'veri'"):
        dataset_spec("veri")


def test_naming_a_dataset_brings_its_settings():
    cfg = profile("cpu", **{"data.dataset": "vehicleid", "data.root": "/data/VehicleID"})
    assert cfg.model.num_views == 2 and cfg.data.random_erasing
    assert cfg.train.val_split is None  # VehicleID has no validation split to log
    kept = profile("cpu", **{"data.dataset": "veri776", "data.random_erasing": False})
    assert not kept.data.random_erasing and kept.model.num_views == 3
    # the synthetic default keeps its config, so cached runs keep their folders
    assert profile("cpu", **{"data.dataset": "synth"}).digest() == PROFILES["cpu"].config.digest()


def test_table3_rows_follow_the_view_classes():
    assert table3_variants(4) == ("baseline", "view3", "view_adversary")
    assert table3_variants(3) == table3_variants(2) == ("baseline", "view_adversary")


def test_a_folder_without_views_stops_a_view_adversary_with_both_commands(
        khoa_trees, khoa_folder_csv):
    run = NotebookRun("03_view_ablation", "smoke", "folder", str(khoa_trees["folder"]),
                      data_csv=str(khoa_folder_csv), out_dir=khoa_trees["folder"].parent)
    assert variant_config(run.config, "baseline").model.view_adversary is False
    with pytest.raises(ValueError) as e:
        run.variant("vscr")
    assert "vscr viewpoint train --dataset synth --num-views 3" in str(e.value)
    assert f"--dataset folder --root {khoa_trees['folder']} --csv {khoa_folder_csv}" in str(e.value)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_veri776_vscr_needs_and_then_takes_view_labels(khoa_trees, smoke_synth, tmp_path,
                                                       capsys):
    root = khoa_trees["veri776"]
    train = ["train", "--profile", "smoke", "--out", str(tmp_path / "run"), "--quiet", "--set",
             "data.dataset=veri776", f"data.root={root}", "train.epochs=1"]
    with pytest.raises(SystemExit) as e:
        main(train)
    message = str(e.value)
    assert "has no view labels" in message and "vscr viewpoint label" in message
    assert not (tmp_path / "run").exists()  # stopped before anything was written

    views = tmp_path / "views-3.pt"
    main(["viewpoint", "train", "--dataset", "synth", "--preset", "smoke",
          "--root", str(smoke_synth),
          "--num-views", "3", "--image-size", "32", "--steps", "3", "--seeds", "0",
          "--out", str(views)])
    labels = tmp_path / "veri776-3views.csv"
    main(["viewpoint", "label", "--dataset", "veri776", "--root", str(root),
          "--checkpoint", str(views), "--out", str(labels)])
    assert labels.is_file()
    capsys.readouterr()

    main([*train, f"data.view_labels={labels}"])
    assert capsys.readouterr().out.strip() == f"checkpoint {tmp_path / 'run' / 'checkpoint.pt'}"
    cfg = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["config"]
    assert cfg["model"]["view_adversary"] and cfg["model"]["num_views"] == 3
    assert cfg["data"]["random_erasing"]


def test_a_folders_view_classes_are_read_once_per_state_of_its_csv(folder_tree, monkeypatch):
    from vscr_core import train

    cfg = profile("smoke", **{"data.dataset": "folder", "data.root": str(folder_tree),
                              "data.csv": str(folder_tree / "crops.csv")})
    reads = []
    load = train.load_data
    monkeypatch.setattr(train, "load_data", lambda c: reads.append(c) or load(c))
    train._folder_view_classes.cache_clear()
    assert train.view_classes(cfg) == train.view_classes(cfg) == 4  # left/right: 4 classes
    assert len(reads) == 1
    csv = folder_tree / "crops.csv"
    text = csv.read_text().replace(",left,", ",side,").replace(",right,", ",side,")
    csv.write_text(text)
    st = os.stat(csv)
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a later edit
    assert train.view_classes(cfg) == 3 and len(reads) == 2  # front/side/rear, read again
