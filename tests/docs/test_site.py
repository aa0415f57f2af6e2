"""The built site: it builds with zero warnings (every reference checked, nothing downloaded), no internal link or
anchor is broken, and, in headless Chromium, every page is reachable from the navigation. The front page and a
how-to page are screenshotted into the test output (copies are committed under docs/images/)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
from docs_helpers import ROOT

sys.path.insert(0, str(ROOT / "tests" / "browser"))
# Pages Sphinx makes that the navigation does not list (the header's search and index links reach them).
NOT_IN_NAVIGATION = {"genindex.html", "py-modindex.html", "search.html"}


def build(out: Path) -> subprocess.CompletedProcess[str]:
    """``scripts/docs``' build: warnings are errors, every reference is checked (-n)."""
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-E", "-b", "html"]
    return subprocess.run([*command, str(ROOT / "docs"), str(out)], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = build(out)
    assert result.returncode == 0, result.stderr
    return out


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        for name in ("href", "src"):
            value = found.get(name)
            if value and not urlparse(value).scheme and not value.startswith("//"):
                self.links.append(value)


@functools.cache
def parsed(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text())
    return links


def pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if not p.relative_to(site).parts[0].startswith("_"))


def test_no_internal_link_is_broken(site: Path) -> None:
    broken = []
    for page in site.rglob("*.html"):
        for link in parsed(page).links:
            path, fragment = urldefrag(link)
            path = path.split("?")[0]  # the theme's cache-busting query
            target = (page.parent / unquote(path)).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {link}")
            elif fragment and target.suffix == ".html" and unquote(fragment) not in parsed(target).ids:
                broken.append(f"{page.relative_to(site)} -> {link} (no such anchor)")
    assert broken == []


def chromium_or_skip() -> str:
    from browser_helpers import CHROMIUM

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "Playwright is not installed"
    else:
        if os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM):
            return CHROMIUM
        reason = f"no Chromium at {CHROMIUM} (scripts/ensure-chromium installs it)"
    if os.environ.get("PHOTA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"PHOTA_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def test_every_page_is_reachable_from_the_navigation(site: Path) -> None:
    from browser_helpers import CHROMIUM_FLAGS
    from playwright.sync_api import sync_playwright

    chromium = chromium_or_skip()
    shots = Path(os.environ.get("PHOTA_TEST_OUTPUT", ROOT / "test-output")) / "docs"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        reached, queue = set(), [site / "index.html"]
        while queue:  # follow the navigation (the sidebar's tree and the previous/next links) from the front page
            current = queue.pop()
            if current in reached:
                continue
            reached.add(current)
            page.goto(current.as_uri())
            hrefs = page.eval_on_selector_all(
                ".sidebar-tree a.reference, .related-pages a", "links => links.map(link => link.href)"
            )
            for href in hrefs:
                target = Path(unquote(urlparse(urldefrag(href)[0]).path))
                if target.suffix == ".html" and target not in reached:
                    queue.append(target)
        page.goto((site / "index.html").as_uri())
        page.screenshot(path=str(shots / "docs-front-page.png"))
        page.goto((site / "howto" / "generate.html").as_uri())
        page.screenshot(path=str(shots / "docs-howto-generate.png"))
        browser.close()
    expected = {p for p in pages(site) if p.name not in NOT_IN_NAVIGATION}
    assert {p.relative_to(site).as_posix() for p in expected - reached} == set()
    assert len(expected) > 30
