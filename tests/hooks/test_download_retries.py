"""Signed downloads: retried as a whole transfer, never leaving a partial file, never carrying the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_phota.exceptions import PhotaConnectionError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator


def fast_hook(emu: PhotaEmulator, monkeypatch: pytest.MonkeyPatch, attempts: int) -> PhotaHook:
    extra = {"retry_wait": 0.01, "retry_max_wait": 0.02, "max_attempts": attempts}
    conn = {"conn_type": "phota", "host": emu.base_url, "password": emu.api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_DEFAULT", json.dumps(conn))
    return PhotaHook()


def signed_url(hook: PhotaHook) -> str:
    return hook.generate("a lighthouse", response_mode="urls", output_format="png").download_urls[0]


def test_a_transfer_cut_midway_and_a_503_are_retried_to_one_complete_file(
    phota_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hook = fast_hook(phota_emulator, monkeypatch, attempts=3)
    url = signed_url(hook)
    phota_emulator.inject_fault("/cdn/*", drop=True, after=True)  # half the body, then the connection dies
    phota_emulator.inject_fault("/cdn/*", status=503)

    written = hook.download(url, tmp_path / "out.png")

    assert [d.status for d in phota_emulator.downloads] == [0, 503, 200]
    assert written == phota_emulator.downloads[-1].size == (tmp_path / "out.png").stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_a_download_that_keeps_failing_leaves_nothing_behind(
    phota_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hook = fast_hook(phota_emulator, monkeypatch, attempts=2)
    url = signed_url(hook)
    phota_emulator.inject_fault("/cdn/*", drop=True, after=True, count=2)

    with pytest.raises(PhotaConnectionError):
        hook.download(url, tmp_path / "out.png")

    assert len(phota_emulator.downloads) == 2
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a leftover partial file
