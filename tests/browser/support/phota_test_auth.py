"""The browser tests' auth manager: Airflow's simple auth manager with one more rule.

The simple auth manager lets every role read every DAG, so a user it refuses a DAG cannot exist there. This
subclass keeps its users, passwords, login page and tokens, and refuses the users named in
``PHOTA_TEST_DAG_OUTSIDERS`` (comma-separated) everything about DAGs: the gallery must then answer 403, as it would
for a user a real deployment's auth manager does not let read that DAG. The API server imports it from
``[core] auth_manager`` (the tests put this folder on its PYTHONPATH).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


def _outsiders() -> set[str]:
    return {name.strip() for name in os.environ.get("PHOTA_TEST_DAG_OUTSIDERS", "").split(",") if name.strip()}


class DagOutsidersAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.get_name() in _outsiders():
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
