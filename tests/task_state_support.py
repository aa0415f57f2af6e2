"""A stand-in for Airflow 3.3's task state store, for tests that give the engine a store on any Airflow."""

from __future__ import annotations

import json
from typing import Any


class JsonStore:
    """``TaskStateStoreAccessor`` as the engine sees it: JSON values by key, ``None`` refused, its calls counted."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.calls = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.calls += 1
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        assert value is not None
        self.calls += 1
        self.values[key] = json.dumps(value)
