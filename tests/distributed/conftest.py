"""The distributed suite reuses the real-deployment helpers of tests/integration (process start, REST client,
careful stop), and the services of the machine: PostgreSQL and Redis on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

# deployment_helpers lives beside the single-machine integration test; pytest puts only this folder on sys.path.
sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
