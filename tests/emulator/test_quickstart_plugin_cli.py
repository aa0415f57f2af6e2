"""The quickstart walk-through with curl ([QS]), the pytest plugin fixtures, and the command line.

The plugin's namespacing and its ``phota_live`` marker are tested in test_plugin_isolation.py.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
from typing import Any

import pytest
import requests
from emulator_helpers import TRAINING_URLS

from airflow_provider_phota.testing import PhotaEmulator, pytest_plugin
from airflow_provider_phota.testing.samples import open_image


def _call(emu: PhotaEmulator, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One quickstart call: with curl when it is installed (as the docs show it), else with requests."""
    url = emu.base_url + "/v1/phota" + path
    if shutil.which("curl"):
        command = ["curl", "-sS", "-X", method, url, "-H", f"X-API-Key: {emu.api_key}", "-w", "\n%{http_code}"]
        if body is not None:
            command += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
        text, status = output.rsplit("\n", 1)
        return int(status), json.loads(text)
    response = requests.request(method, url, json=body, headers={"X-API-Key": emu.api_key}, timeout=60)
    return response.status_code, response.json()


def test_quickstart(phota_emulator: PhotaEmulator) -> None:
    emu = phota_emulator
    assert _call(emu, "GET", "/profiles/ids") == (200, {"profiles": []})

    status, created = _call(emu, "POST", "/profiles/add", {"image_urls": TRAINING_URLS})
    assert status == 200
    profile_id = created["profile_id"]
    status, polled = _call(emu, "GET", f"/profiles/{profile_id}/status")
    assert (status, polled["status"]) == (200, "VALIDATING")
    emu.advance(emu.training_seconds)
    assert _call(emu, "GET", f"/profiles/{profile_id}/status")[1]["status"] == "READY"

    edit = {
        "prompt": f"[[{profile_id}]] smiling at golden hour",
        "images": ["https://example.com/input.jpg"],
        "profile_ids": [profile_id],
        "num_output_images": 2,
        "resolution": "4K",
        "aspect_ratio": "1:1",
        "output_format": "jpg",
    }
    status, edited = _call(emu, "POST", "/edit", edit)
    assert status == 200
    assert edited["known_subjects"] == {"counts": {profile_id: 2}}
    assert len(edited["images"]) == 2
    image = open_image(base64.b64decode(edited["images"][0]))
    assert (image.format, image.size) == ("JPEG", (4096, 4096))

    status, as_urls = _call(emu, "POST", "/edit", {**edit, "num_output_images": 1, "response_mode": "urls"})
    assert status == 200
    assert as_urls["images"] == []
    assert len(as_urls["download_urls"]) == 1

    status, generated = _call(
        emu, "POST", "/generate", {"prompt": f"[[{profile_id}]] as an astronaut", "num_output_images": 2}
    )
    assert (status, generated["known_subjects"]) == (200, {"counts": {profile_id: 2}})
    status, enhanced = _call(
        emu, "POST", "/enhance", {"image": "https://example.com/input.jpg", "profile_ids": [profile_id]}
    )
    assert (status, len(enhanced["images"])) == (200, 1)


# --- pytest plugin --------------------------------------------------------------------------------------------------


def test_plugin_is_loaded_and_light(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin(pytest_plugin.__name__)  # loaded by tests/conftest.py
    assert pytestconfig.getoption("--phota-training-seconds") == pytest_plugin.DEFAULT_TRAINING_SECONDS
    code = (
        "import sys, airflow_provider_phota.testing.pytest_plugin, airflow_provider_phota.testing;"
        "heavy = [m for m in ('PIL', 'aiohttp', 'airflow') if m in sys.modules]; print(heavy)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_phota_emulator_fixture_is_reset_between_tests(phota_emulator: PhotaEmulator) -> None:
    assert phota_emulator.profiles == {}
    assert phota_emulator.requests == []
    assert phota_emulator.training_seconds == pytest_plugin.DEFAULT_TRAINING_SECONDS
    assert phota_emulator.job_seconds == pytest_plugin.DEFAULT_JOB_SECONDS
    # leave state behind; the next test sees none of it
    phota_emulator.inject_fault("/v1/phota/*", status=500, count=100)
    requests.get(phota_emulator.base_url + "/v1/phota/profiles/ids", timeout=10)


def test_phota_emulator_fixture_state_was_cleared(phota_emulator: PhotaEmulator) -> None:
    response = requests.get(
        phota_emulator.base_url + "/v1/phota/profiles/ids", headers={"X-API-Key": "test-key"}, timeout=10
    )
    assert response.status_code == 200
    assert len(phota_emulator.requests) == 1


def test_phota_conn_id_fixture(phota_conn_id: str, phota_emulator: PhotaEmulator) -> None:
    assert phota_conn_id == "phota_default"
    connection = json.loads(os.environ["AIRFLOW_CONN_PHOTA_DEFAULT"])
    assert connection == {"conn_type": "phota", "host": phota_emulator.base_url, "password": phota_emulator.api_key}


# --- command line ---------------------------------------------------------------------------------------------------


def test_cli_serves_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_phota.testing.emulator",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--training-seconds",
            "3",
            "--job-seconds",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line.startswith("Phota emulator listening on http://127.0.0.1:")
        base_url = first_line.rsplit(" ", 1)[1].strip()
        response = requests.get(base_url + "/v1/phota/profiles/ids", headers={"X-API-Key": "cli-key"}, timeout=10)
        assert response.json() == {"profiles": []}
        assert (
            requests.get(base_url + "/v1/phota/profiles/ids", headers={"X-API-Key": "x"}, timeout=10).status_code == 401
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_realistic_timings() -> None:
    from airflow_provider_phota.testing.emulator.cli import _parse_args

    args = _parse_args(["--realistic"])
    assert (args.training_seconds, args.job_seconds) == (1200.0, 60.0)
    assert (args.host, args.port) == ("127.0.0.1", 8089)
    assert args.idempotency_seconds == 24 * 3600
    assert _parse_args(["--idempotency-seconds", "60"]).idempotency_seconds == 60.0
