"""benchmarks/gpu_check.py: its CPU smoke mode runs where tqdm and matplotlib are missing (the GPU
machine's python3 has neither), and writes its JSON to $OUT."""

from __future__ import annotations

import json
import math
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
BLOCKED = ("tqdm", "matplotlib", "seaborn", "papermill", "faiss")

# Runs the script with the venv-only packages unimportable, then prints what was imported.
SHIM = f"""
import runpy, sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # `import name` now raises ImportError
sys.argv = [{str(SCRIPT)!r}, "--device", "cpu", "--smoke"]
runpy.run_path(sys.argv[0], run_name="__main__")
print("IMPORTED", sorted({{k.split(".")[0] for k, v in sys.modules.items() if v is not None}}))
"""


def test_smoke_runs_without_tqdm_and_matplotlib(tmp_path):
    # one thread: the smoke's tiny tensors, beside other busy processes, wait less
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", SHIM], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    imported = run.stdout.split("IMPORTED", 1)[1]
    assert not any(f"'{name}'" in imported for name in BLOCKED), imported
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["sizes"] == "smoke" and report["device"] == "cpu"
    for name, dilations in (("baseline", [1]), ("vscr", [1, 2, 3])):
        r = report["train"][name]
        assert r["dilations"] == dilations and r["view_adversary"] == (name == "vscr")
        assert r["images_per_s"] > 0 and r["peak_gpu_mb"] is None
        assert math.isfinite(r["loss_first"]) and math.isfinite(r["loss_last"])
    e = report["eval"]
    assert (e["queries"], e["gallery"], e["distractors"]) == (200, 50, 2_000)
    assert e["seconds"] > 0 and 0 <= e["mAP"] <= 1 and e["peak_gpu_mb"] is None
    assert "train baseline" in run.stdout and "eval UAV-VeID" in run.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_cuda_missing_is_a_clear_error():
    main = runpy.run_path(str(SCRIPT))["main"]
    with pytest.raises(SystemExit, match="CUDA is not available.*--device cpu --smoke"):
        main(["--device", "cuda"])
