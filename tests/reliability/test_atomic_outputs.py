"""Atomic outputs: a failure in the middle of writing an output leaves no partial file at the final name (and no
leftover temporary file), and the retry writes the complete set."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from PIL import Image
from reliability_support import MAX_ATTEMPTS, task_context
from reliability_support import visible_files as visible_everything

from airflow_provider_phota import storage
from airflow_provider_phota.exceptions import PhotaConnectionError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.testing import PhotaEmulator

COUNT = 3
ORIGINAL_WRITE = storage.atomic_write


def _operator(out: Path, **kwargs: Any) -> PhotaGenerateOperator:
    return PhotaGenerateOperator(
        task_id="generate", prompt="three foxes", num_output_images=COUNT, output_path=str(out), **kwargs
    )


def _wait_for_result(hook: PhotaHook, job_id: str) -> Any:
    state = hook.get_job(job_id)
    while not state.is_terminal:
        time.sleep(0.05)
        state = hook.get_job(job_id)
    return state.result


def visible_files(folder: Path) -> list[str]:
    """The files a reader sees, but the task's manifest (written atomically too)."""
    return [name for name in visible_everything(folder) if not name.endswith("-manifest.json")]


def _complete_set(out: Path, uris: list[str]) -> None:
    assert visible_files(out) == sorted(Path(u.removeprefix("file://")).name for u in uris)  # nothing else
    for uri in uris:
        with Image.open(uri.removeprefix("file://")) as image:
            image.load()  # a truncated file fails here


def _disk_full_on_write(monkeypatch: pytest.MonkeyPatch, failing_call: int) -> list[str]:
    """Make the ``failing_call``-th output write die after half of its bytes, inside the real atomic_write."""
    original = storage.atomic_write
    targets: list[str] = []

    def half_then_fail(chunks: Iterable[bytes]) -> Iterator[bytes]:
        data = b"".join(chunks)
        yield data[: len(data) // 2]
        raise OSError(28, "No space left on device")

    def atomic_write(destination: Any, chunks: Iterable[bytes]) -> int:
        if destination.name.endswith("-manifest.json"):
            return original(destination, chunks)
        targets.append(destination.name)
        if len(targets) == failing_call:
            return original(destination, half_then_fail(chunks))
        return original(destination, chunks)

    monkeypatch.setattr(storage, "atomic_write", atomic_write)
    return targets


def test_atomic_write_failing_midway_leaves_nothing_and_keeps_an_earlier_file(tmp_path: Path) -> None:
    target = storage.storage_path(tmp_path / "image.png")

    def broken() -> Iterator[bytes]:
        yield b"\x89PNG first half"
        raise OSError(5, "I/O error")

    with pytest.raises(OSError, match="I/O error"):
        storage.atomic_write(target, broken())
    assert visible_files(tmp_path) == []

    storage.atomic_write(target, [b"complete v1"])
    with pytest.raises(OSError, match="I/O error"):
        storage.atomic_write(target, broken())  # a failed rewrite does not clobber the complete file
    assert visible_files(tmp_path) == ["image.png"]
    assert (tmp_path / "image.png").read_bytes() == b"complete v1"


def test_download_cut_midway_leaves_no_partial_file_and_the_retry_writes_all(
    emu: PhotaEmulator, conn_id: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    context = task_context(task_id="generate")
    # Learn the job's download URLs first (a deferring try submits it and notes it in the manifest), then cut the
    # transfer of the second image midway on every attempt of the hook.
    with pytest.raises(TaskDeferred):
        _operator(out, deferrable=True, poll_interval=0.05).execute(context)
    (job_id,) = emu.jobs
    with PhotaHook(conn_id) as hook:
        urls = _wait_for_result(hook, job_id).download_urls
    emu.inject_fault(urlsplit(urls[1]).path, drop=True, after=True, count=MAX_ATTEMPTS)

    with pytest.raises(PhotaConnectionError):
        _operator(out, poll_interval=0.05).execute(context)
    cut = [d for d in emu.downloads if d.status == 0]
    assert len(cut) == MAX_ATTEMPTS  # each attempt sent half the body, then the connection died
    first_try = visible_files(out)
    assert len(first_try) == 1  # image 00 complete; image 01 absent, not half-written; no temporary file
    assert first_try[0].endswith("-00.png")

    summary = _operator(out, poll_interval=0.05).execute(context)  # the task's retry

    assert summary["job_id"] == job_id
    assert len(summary["output_uris"]) == COUNT
    _complete_set(out, summary["output_uris"])
    assert len(emu.jobs) == 1
    assert len(emu.charges("images")) == 1


ATOMIC_MODES = {
    "worker": {"poll_interval": 0.05, "deferrable": False},
}


@pytest.mark.parametrize("mode", ATOMIC_MODES)
def test_write_failing_midway_leaves_no_partial_file_and_the_retry_writes_all(
    mode: str, emu: PhotaEmulator, conn_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    context = task_context(task_id="generate")
    targets = _disk_full_on_write(monkeypatch, failing_call=2)

    with pytest.raises(OSError, match="No space left"):
        _operator(out, **ATOMIC_MODES[mode]).execute(context)
    assert len(targets) == 2
    assert visible_files(out) == [targets[0]]  # the second image is not at its final name, nor half-written anywhere

    monkeypatch.setattr(storage, "atomic_write", ORIGINAL_WRITE)  # the disk has room again
    summary = _operator(out, **ATOMIC_MODES[mode]).execute(context)  # the task's retry

    uris = summary["output_uris"]
    assert len(uris) == COUNT
    names = {Path(u).name for u in uris}
    if mode == "async":
        # The same job: the same names, so the retry completes the set in place.
        assert targets[0] in names
        _complete_set(out, uris)
    else:
        # Sync mode has no job to come back to: the retry is a new request with new names. The first try's
        # complete image stays (complete, never partial); the retry's set is whole.
        assert set(visible_files(out)) == names | {targets[0]}
        for uri in uris:
            with Image.open(uri.removeprefix("file://")) as image:
                image.load()
