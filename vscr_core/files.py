"""Files the project writes and reads back: atomic writes, and torch files tagged with a format.

Writes go to a temporary file that is renamed over the target, so an interrupted run never leaves
a half-written file that looks whole. Torch files are loaded with weights_only=True and carry a
"format" tag, so a checkpoint of one kind is never mistaken for another.
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def torch_load(path: str | os.PathLike, what: str):
    """torch.load(weights_only=True) with errors that name the file and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is corrupt or not a torch file ({e}); expected {what}") from e


def save_tagged(path: str | os.PathLike, fmt: str, state: dict) -> Path:
    """torch.save({"format": fmt, **state}) atomically."""
    buf = io.BytesIO()
    torch.save({"format": fmt, **state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_tagged(path: str | os.PathLike, fmt: str, what: str) -> dict:
    """A file written by save_tagged with this format; anything else is refused."""
    state = torch_load(path, what)
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise ValueError(f"{path} is not {what} (expected format {fmt!r})")
    return state


def save_figure(fig, path: str | os.PathLike) -> Path:
    """A matplotlib figure or a PIL image as a PNG, written atomically."""
    buf = io.BytesIO()
    if hasattr(fig, "savefig"):
        fig.savefig(buf, format="png")
    else:
        fig.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


# What `make reproduce` rewrites: its own outputs, the executed notebooks and the README's results.
# A change there does not make the code that produced a table differ from HEAD.
OUTPUT_PATHS = ("results", "figures", "notebooks/*.ipynb", "README.md")


def git_commit(root: Path = REPO_ROOT) -> str:
    """HEAD's hash, with '-dirty' when tracked files other than OUTPUT_PATHS differ from it;
    'unknown' outside git. Every result's provenance records it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", *(f":(exclude,glob){p}" if "*" in p else f":(exclude){p}"
                                       for p in OUTPUT_PATHS)],
                               cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")
