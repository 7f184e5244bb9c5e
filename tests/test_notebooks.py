"""Every notebook runs headlessly (papermill) in the smoke profile into a temporary folder, and
its tables are read back and checked. The committed results/ and figures/ are never touched: the
synthetic data come from the `smoke_synth` fixture, found through $VSCR_DATA."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import NOTEBOOKS, printed

from vscr_core.config import profile_settings
from vscr_core.paper import notebook as nbk
from vscr_core.paper import results
from vscr_core.paper.reproduce import notebook_paths, reproduce
from vscr_core.runtime import describe_hardware, resolve_device


def check_provenance(meta: dict, notebook: str) -> None:
    assert meta["notebook"] == notebook and meta["profile"] == "smoke"
    assert "not converged" in meta["profile_about"]
    assert meta["commit"] and meta["seeds"] == [0] and meta["wall_s"] >= 0
    assert meta["hardware"] == describe_hardware(resolve_device("auto"))


def test_notebooks_have_one_parameters_cell():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1, path
        for p in ("profile", "dataset", "data_root", "device", "seeds", "out_dir"):
            assert f"\n{p} = " in "\n" + "".join(tagged[0]["source"]), (path, p)
        assert cells[0]["cell_type"] == "markdown" and cells[-1]["cell_type"] == "markdown"


@pytest.mark.slow
def test_00_datasets(notebook_env, run_notebook):
    from vscr_core.data import dataset_statistics, load_uav_veid

    out_dir, root = notebook_env
    run_notebook("00_datasets", data_root=str(root))
    table, meta = results.read_table("table1_datasets", out_dir)
    check_provenance(meta, "00_datasets")
    val, test = load_uav_veid(root, "val"), load_uav_veid(root, "test")
    st_val, st_test = dataset_statistics(val, False), dataset_statistics(test, False)
    measured = table[table["source"] == "measured"].iloc[0]
    ids = st_val["train"]["ids"] + st_val["query"]["ids"] + st_test["query"]["ids"]
    images = sum(st_val[s]["images"] for s in ("train", "query", "gallery")) + \
        st_test["query"]["images"] + st_test["gallery"]["images"]
    assert (measured["identities"], measured["images"]) == (ids, images)
    assert measured["distractors"] == st_val["distractors"]["images"] > 0
    reported = table[table["source"].str.startswith("reported")]
    assert list(reported["dataset"]) == ["VeRi-776", "VehicleID", "VERI-Wild", "UAV-VeID"]
    assert reported.set_index("dataset").loc["UAV-VeID", "images"] == 41_917

    splits, _ = results.read_table("table1_splits", out_dir)
    by = splits.set_index("split")
    assert by.loc["train", "identities_measured"] == st_val["train"]["ids"]
    assert by.loc["test", "images_measured"] == st_test["query"]["images"] + len(test.gallery)
    assert by.loc["train", "identities_reported"] == 1_797
    for fig in ("fig3_dataset_statistics", "synth_contact_sheet"):
        assert (out_dir / "figures" / f"{fig}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_01_viewpoint(notebook_env, run_notebook):
    out_dir, _ = notebook_env
    run_notebook("01_viewpoint")
    runs, meta = results.read_table("viewpoint_fig6", out_dir)
    check_provenance(meta, "01_viewpoint")
    settings = profile_settings("smoke").fig6
    assert meta["config"]["steps"] == settings.classifier.steps
    assert sorted(runs["fraction"]) == sorted(settings.fractions)
    assert runs["accuracy"].between(0, 1).all() and (runs["test_images"] > 0).all()
    summary, _ = results.read_table("viewpoint_fig6_summary", out_dir)
    assert np.allclose(summary["accuracy_measured_mean"],
                       100 * runs.groupby("fraction")["accuracy"].mean().to_numpy(), atol=0.01)
    for fig in ("fig6_viewpoint", "viewpoint_confusion"):
        assert (out_dir / "figures" / f"{fig}.png").stat().st_size > 10_000

    # a second run with the same settings reuses the finished runs instead of retraining
    assert "reusing the finished Fig. 6 runs" in printed(run_notebook("01_viewpoint"))


def test_index_lists_every_figure_and_table(tmp_path):
    import pandas as pd

    results.write_table(pd.DataFrame({"a": [1, 2]}), "viewpoint_fig6_summary", tmp_path,
                        {"commit": "abc", "profile": "smoke"})
    page = results.build_index(tmp_path).read_text()
    for f in results.FIGURES:
        assert f.name in page
    assert "results/viewpoint_fig6_summary.csv" in page and "not drawn yet" in page


def test_write_table_refuses_bad_names_and_values(tmp_path):
    import pandas as pd

    with pytest.raises(ValueError, match="bare file stem"):
        results.write_table(pd.DataFrame(), "../x", tmp_path, {})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        results.write_table(pd.DataFrame(), "x", tmp_path, {"bad": object()})
    assert not (tmp_path / "results" / "x.csv").exists()  # nothing half-written
    assert nbk.resolve_seeds("0, 1", "quick") == (0, 1) == nbk.resolve_seeds([0, 1], "smoke")
    assert nbk.resolve_seeds(None, "smoke") == (0,)


def test_notebook_paths_in_order_and_unknown_prefix():
    names = [p.stem for p in notebook_paths()]
    assert names == sorted(names) and names[0] == "00_datasets"
    assert [p.stem for p in notebook_paths(["01"])] == ["01_viewpoint"]
    with pytest.raises(ValueError, match="no notebook matches"):
        notebook_paths(["99"])


@pytest.mark.slow
def test_reproduce_prints_a_line_per_notebook(notebook_env, capfd):
    out_dir, _ = notebook_env
    written = reproduce("smoke", out_dir=out_dir / "repro", only=["00"])
    assert [p.name for p in written] == ["00_datasets.ipynb"] and written[0].is_file()
    out = capfd.readouterr().out
    assert "[1/1] 00_datasets (smoke) ..." in out and "[1/1] 00_datasets done in" in out
    assert "Measured synth-smoke-s0" in out  # the notebook's own printed statement
    assert (out_dir / "repro" / "results" / "table1_datasets.csv").is_file()


def test_git_commit_is_not_dirty_for_what_reproduce_rewrites(tmp_path):
    import subprocess

    from vscr_core.files import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    for rel in ("results/t.csv", "figures/f.png", "notebooks/n.ipynb", "README.md", "code.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "x")
    for rel in ("results/t.csv", "figures/f.png", "notebooks/n.ipynb", "README.md"):
        (tmp_path / rel).write_text("b")
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "code.py").write_text("b")
    assert git_commit(tmp_path).endswith("-dirty")
