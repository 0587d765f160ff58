"""The workdir's run folders: a run removes only its own copies, the sweep only what is older than
the retention (by the newest file in a folder), at most once per few minutes per process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rh_extend import workdir
from rh_extend.observe.render import render_run_markdown
from rh_extend.workdir import Removal, maybe_sweep, remove_run_copies, sweep

HOUR = 3600.0


def _file(path: Path, size: int, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"v" * size)
    _age(path, age_s)
    return path


def _age(path: Path, age_s: float) -> None:
    then = time.time() - age_s
    os.utime(path, (then, then))


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_run_removes_its_download_folder_and_staged_copy(tmp_path: Path) -> None:
    download = workdir.download_folder(tmp_path, "k" * 64)
    _file(download / "output.mp4", 1000)
    _file(download / "contact-sheet.png", 24)
    staged = _file(workdir.staging_folder(tmp_path) / "source.bin", 500)
    sibling = _file(workdir.download_folder(tmp_path, "k" * 64) / "output.mp4.part", 7)

    removal = remove_run_copies(tmp_path, [download / "output.mp4", staged, None])

    assert (removal.files, removal.bytes) == (3, 1524)
    assert removal.describe() == "3 files, 1.5 KB"
    assert removal.folders == (
        download.relative_to(tmp_path).as_posix(),
        staged.parent.relative_to(tmp_path).as_posix(),
    )
    # another run of the same request is still downloading: its folder and the request's stay
    assert _files(tmp_path) == [sibling.relative_to(tmp_path).as_posix()]
    remove_run_copies(tmp_path, [sibling])
    assert list((tmp_path / "runs").iterdir()) == []
    assert (tmp_path / "sources").is_dir()


def test_a_path_outside_the_run_folders_is_never_removed(tmp_path: Path) -> None:
    users = _file(tmp_path / "mine" / "clip.mp4", 10)
    near = _file(tmp_path / "work" / "clip.mp4", 10)
    loose = _file(tmp_path / "work" / "runs" / "k" / "output.mp4", 10)  # not in a run's folder
    elsewhere = _file(tmp_path / "other" / "sources" / "source-x" / "source.bin", 10)

    removal = remove_run_copies(tmp_path / "work", [users, near, loose, elsewhere])

    assert removal == Removal()
    assert all(p.exists() for p in (users, near, loose, elsewhere))


def test_the_sweep_removes_only_what_is_older_than_the_retention(tmp_path: Path) -> None:
    old_run = _file(tmp_path / "runs" / "k1" / "a" / "output.mp4", 100, age_s=25 * HOUR)
    _age(old_run.parent, 25 * HOUR)
    # an old folder with a new file in it is a live run's: the newest file counts
    live = _file(tmp_path / "runs" / "k1" / "b" / "output.mp4.part", 5, age_s=0)
    _file(live.parent / "stale.png", 5, age_s=30 * HOUR)
    _age(live.parent, 30 * HOUR)
    old_source = _file(tmp_path / "sources" / "source-1" / "source.bin", 40, age_s=48 * HOUR)
    _age(old_source.parent, 48 * HOUR)
    new_source = tmp_path / "sources" / "source-2"
    new_source.mkdir()  # a run staging right now: nothing in it yet
    legacy = _file(tmp_path / "runs" / "k2" / "output.mp4", 60, age_s=72 * HOUR)
    _age(legacy.parent, 72 * HOUR)
    yours = _file(tmp_path / "sample.mp4", 3, age_s=100 * HOUR)

    removal = sweep(tmp_path, 24 * HOUR)

    assert (removal.files, removal.bytes) == (3, 200)
    assert sorted(removal.folders) == ["runs/k1/a", "runs/k2/output.mp4", "sources/source-1"]
    assert _files(tmp_path) == [
        "runs/k1/b/output.mp4.part",
        "runs/k1/b/stale.png",
        "sample.mp4",
    ]
    assert new_source.is_dir() and yours.exists()
    assert not (tmp_path / "runs" / "k2").exists()  # the request's folder went with its last file
    assert sweep(tmp_path, 24 * HOUR) == Removal()


def test_the_sweep_of_an_empty_or_missing_workdir_removes_nothing(tmp_path: Path) -> None:
    assert sweep(tmp_path / "never-used", HOUR) == Removal()
    (tmp_path / "runs").mkdir()
    assert sweep(tmp_path, HOUR) == Removal()


def test_a_process_sweeps_a_workdir_at_most_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(workdir.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(workdir, "_last_sweep", {})
    old = _file(tmp_path / "sources" / "source-1" / "source.bin", 1, age_s=2 * HOUR)
    _age(old.parent, 2 * HOUR)

    assert maybe_sweep(tmp_path, HOUR) == Removal(1, 1, ("sources/source-1",))
    again = _file(tmp_path / "sources" / "source-2" / "source.bin", 1, age_s=2 * HOUR)
    _age(again.parent, 2 * HOUR)
    clock[0] += workdir.SWEEP_EVERY_S - 1
    assert maybe_sweep(tmp_path, HOUR) is None
    assert again.exists()
    clock[0] += 1
    assert maybe_sweep(tmp_path, HOUR) == Removal(1, 1, ("sources/source-2",))


def test_the_run_report_says_what_was_removed() -> None:
    manifest = {
        "request_key": "k" * 64,
        "task_id": "1",
        "request": {"model": "wan-2.7", "params": {}, "source": "s3://b/clip.mp4"},
        "output": {"uri": "s3://b/p/k/output.mp4"},
    }
    uris = {"output": "s3://b/p/k/output.mp4"}

    shown = render_run_markdown(
        manifest, {}, uris, archive_s=1.0, reused=False, removed={"files": 3, "bytes": 3 << 20}
    )
    assert "**Local copies removed** once archived: 3 files, 3.0 MB from the workdir" in shown
    without = render_run_markdown(manifest, {}, uris, archive_s=1.0, reused=False)
    assert "Local copies removed" not in without


def test_the_folders_made_in_a_tracked_block_are_listed(tmp_path: Path) -> None:
    before = workdir.staging_folder(tmp_path)
    with workdir.tracked_copies() as made:
        download = workdir.download_folder(tmp_path, "k" * 64)
        staged = workdir.staging_folder(tmp_path)
    after = workdir.download_folder(tmp_path, "k" * 64)

    assert made == [download, staged]
    assert before not in made and after not in made


def test_a_failed_transfer_leaves_no_empty_folder(tmp_path: Path) -> None:
    first = workdir.download_folder(tmp_path, "k" * 64)
    second = workdir.download_folder(tmp_path, "k" * 64)
    staged = workdir.staging_folder(tmp_path)

    workdir.remove_if_empty(first)
    assert not first.exists() and second.parent.is_dir()  # the request's folder is still in use
    workdir.remove_if_empty(second)
    workdir.remove_if_empty(staged)
    assert (
        list((tmp_path / "runs").iterdir()) == [] and list((tmp_path / "sources").iterdir()) == []
    )
    kept = _file(workdir.download_folder(tmp_path, "k" * 64) / "output.mp4", 3)  # not a video?
    workdir.remove_if_empty(kept.parent)
    assert kept.exists()  # a paid result that failed its check stays for a person to look at
