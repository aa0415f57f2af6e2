"""Without a browser the browser tests skip and say how to enable them; with PHOTA_REQUIRE_BROWSER=1 (.ci/run) they
fail instead. Runs tests/browser in a subprocess with PHOTA_CHROMIUM pointing at nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_phota.plugins.gallery import gallery_supported

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not gallery_supported(), reason="the browser tests skip before Airflow 3.1 anyway")


def run_browser_tests(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PHOTA_REQUIRE_BROWSER"}
    environment.update(PHOTA_CHROMIUM="/nonexistent/chromium", **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/browser", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_missing_browser_skips_with_how_to_enable() -> None:
    result = run_browser_tests()
    assert result.returncode == 0, result.stdout[-3000:]
    assert "no Chromium at /nonexistent/chromium" in result.stdout
    assert "scripts/ensure-chromium" in result.stdout
    assert " skipped" in result.stdout.splitlines()[-1]
    assert "passed" not in result.stdout.splitlines()[-1]


def test_missing_browser_fails_when_required() -> None:
    result = run_browser_tests(PHOTA_REQUIRE_BROWSER="1")
    assert result.returncode != 0, result.stdout[-3000:]
    assert "browser tests required (PHOTA_REQUIRE_BROWSER=1) but no Chromium" in result.stdout
