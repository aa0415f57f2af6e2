"""What the browser tests share besides fixtures: users, Chromium's path and flags, logging in through the UI.

Importing it puts tests/integration on ``sys.path`` for ``deployment_helpers`` (the real deployment).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from deployment_helpers import AirflowDeployment  # noqa: E402

API_KEY = "browser-test-key"
# username -> (simple auth manager role, password)
USERS = {
    "admin": ("admin", "admin-pass-1"),
    "viewer": ("viewer", "viewer-pass-2"),
    "outsider": ("viewer", "out-3"),
    "author": ("user", "author-pass-4"),  # Airflow's `user` role: may trigger runs and write XCom through the REST API
}
DAG_ID = "phota_subject_pipeline"
CHROMIUM = os.environ.get("PHOTA_CHROMIUM", "/usr/bin/chromium")
# Headless on a closed network: without the background-networking flags Chromium's own calls fail in bulk.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ENABLE_HINT = (
    "install Chromium with `scripts/ensure-chromium` (as root: apt-get install -y chromium) "
    "or point PHOTA_CHROMIUM at a Chromium binary"
)


def unavailable() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    from airflow_provider_phota.plugins.gallery import gallery_supported

    if not gallery_supported():
        return "needs Airflow 3.1+ (plugin views and human-in-the-loop)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"Playwright is not installed (pip install -e '.[test]'); {ENABLE_HINT}"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}: {ENABLE_HINT}"
    return None


@dataclass
class Session:
    """A logged-in browser context (its own cookies) and its first page."""

    context: Any
    page: Any
    username: str


def log_in_through_ui(browser: Any, deployment: AirflowDeployment, username: str) -> Session:
    """Log in on the simple auth manager's login page, as a person would."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{deployment.base_url}/auth/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(USERS[username][1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    return Session(context, page, username)
