"""The dependency rules of DESIGN.md hold, and the check that enforces them can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("rh_extend", "runninghub", "sandbox", "flows", "tasks", "deployments")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy's packages, not the editable install's, are analysed.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_of_the_code(dest: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, symlinks=True, ignore=_no_caches)
    shutil.copy(ROOT / "pyproject.toml", dest)
    return dest


def _no_caches(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__"]


def test_the_code_keeps_every_rule() -> None:
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "0 broken" in run.stdout


def test_a_task_importing_a_flow_breaks_the_layers(tmp_path: Path) -> None:
    root = _copy_of_the_code(tmp_path)
    stage = root / "tasks" / "stage.py"
    stage.write_text(stage.read_text() + "\nfrom rh_extend.flows import extend_video  # noqa\n")

    run = _lint_imports(root)

    assert run.returncode == 1
    assert "rh_extend.tasks.stage -> rh_extend.flows.extend_video" in run.stdout


def test_the_client_importing_prefect_is_refused(tmp_path: Path) -> None:
    root = _copy_of_the_code(tmp_path)
    catalog = root / "runninghub" / "catalog.py"
    catalog.write_text(catalog.read_text() + "\nimport prefect  # noqa\n")

    run = _lint_imports(root)

    assert run.returncode == 1
    assert "runninghub.catalog -> prefect" in run.stdout
