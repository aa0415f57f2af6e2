"""docs/testing.md's "test your own DAGs" example, run as written from an empty project on this Airflow.

The page includes its files from docs/snippets/testing/; this test copies exactly those files into an empty
directory and runs pytest there in a fresh interpreter, with none of this suite's Airflow settings in the
environment, so the example works only if the plugin alone gives a project what ``dag.test()`` needs. It runs on
every supported Airflow (scripts/test-matrix lists tests/user_project).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
PAGE = ROOT / "docs" / "testing.md"
SNIPPETS = ROOT / "docs" / "snippets" / "testing"


def _snippet_files() -> list[Path]:
    return sorted(path for path in SNIPPETS.rglob("*") if path.is_file() and "__pycache__" not in path.parts)


def test_the_page_includes_every_snippet_file() -> None:
    included = set(re.findall(r"```\{literalinclude\} (\S+)", PAGE.read_text()))
    assert included == {str(path.relative_to(PAGE.parent)) for path in _snippet_files()}


def test_the_snippet_passes_in_an_empty_project(tmp_path: Path) -> None:
    project = tmp_path / "my_project"
    shutil.copytree(SNIPPETS, project, ignore=shutil.ignore_patterns("__pycache__"))
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "PYTEST_"))}

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout, result.stdout[-3000:]
    assert not list(project.rglob("airflow.db")), "the scratch Airflow home must live outside the project"
