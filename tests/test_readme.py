"""The README is a front page: small, opening with the contributors' two commands, its DAG the snippet the docs
tests run (tests/docs/test_snippets.py), and every link into the repository pointing at a file that exists. What
it used to say in full is on the documentation pages, kept honest by tests/docs without reading prose."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_readme_is_a_front_page() -> None:
    assert len(README.encode()) < 10 * 1024


def test_the_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["bash scripts/demo", "bash scripts/test"]
    assert (ROOT / "scripts" / "demo").is_file()
    assert (ROOT / "scripts" / "test").is_file()


def test_every_link_into_the_repository_exists() -> None:
    links = [target for target in re.findall(r"\]\(([^)\s]+)\)", README) if "://" not in target]
    assert links, "the README links into the docs"
    missing = [target for target in links if not (ROOT / target.split("#")[0]).exists()]
    assert missing == []
