"""What the docs tests share: where the snippet DAGs are and the name of their DAG bundle."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets"
BUNDLE = "docs-snippets"
