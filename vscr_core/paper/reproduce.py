"""`make reproduce`: every notebook executed in order with papermill, and the README's results
section rebuilt from the committed tables."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from vscr_core.config import COMMITTED_PROFILE, profile_settings
from vscr_core.files import REPO_ROOT


def notebook_paths(only=None) -> list[Path]:
    """notebooks/*.ipynb in order; `only`: names or prefixes such as "02" or "03_view"."""
    paths = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        chosen = [p for p in paths if any(p.stem.startswith(str(o)) for o in only)]
        unknown = [o for o in only if not any(p.stem.startswith(str(o)) for p in paths)]
        if unknown:
            raise ValueError(f"no notebook matches {unknown}; have {[p.stem for p in paths]}")
        paths = chosen
    return paths


def reproduce(profile: str = "quick", out_dir=None, only=None) -> list[Path]:
    """Execute the notebooks with papermill in `profile`, one after the other, printing a line
    per notebook and the notebooks' own lines (one per trained or reused run). Without out_dir
    the committed profile (COMMITTED_PROFILE) executes the notebooks in place and fills the
    committed results/ and figures/, and every other profile writes into out/<profile>/; with
    out_dir, the executed copies, results/ and figures/ go there."""
    import papermill

    profile_settings(profile)  # an unknown profile fails here, before any notebook runs
    if out_dir is None and profile != COMMITTED_PROFILE:
        out_dir = REPO_ROOT / "out" / profile  # never over the converged study's outputs
    paths = notebook_paths(only)
    params = {"profile": profile, **({"out_dir": str(Path(out_dir).resolve())} if out_dir else {})}
    written, tic = [], time.perf_counter()
    for i, src in enumerate(paths, 1):
        dst = Path(out_dir) / "notebooks" / src.name if out_dir else src
        dst.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{i}/{len(paths)}] {src.stem} ({profile}) ...", flush=True)
        start = time.perf_counter()
        # stdout of the cells (run lines, statements) comes through; tqdm bars on stderr do not
        papermill.execute_notebook(str(src), str(dst), parameters=params, kernel_name="python3",
                                   progress_bar=False, stdout_file=sys.stdout,
                                   cwd=str(REPO_ROOT / "notebooks"))
        print(f"[{i}/{len(paths)}] {src.stem} done in {time.perf_counter() - start:.0f} s "
              f"(total {(time.perf_counter() - tic) / 60:.1f} min)", flush=True)
        written.append(dst)
    if out_dir is None and any(p.stem.startswith("09") for p in paths):
        from vscr_core.paper import readme as sections

        readme = REPO_ROOT / "README.md"
        minutes = (time.perf_counter() - tic) / 60
        sections.update_readme(readme, sections.results_section(reproduce_minutes=minutes),
                               sections.RESULTS_START, sections.RESULTS_END)
        print(f"updated the results section of {readme}")
    return written
