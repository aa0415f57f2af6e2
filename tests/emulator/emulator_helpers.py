"""Helpers of the emulator tests: a tiny HTTP client bound to an emulator, and image helpers.

A uniquely named module (not ``conftest``) so that it can be imported by name next to the project's root conftest.
"""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_phota.contract import API_PREFIX
from airflow_provider_phota.testing import PhotaEmulator

TRAINING_URLS = [f"https://example.com/photos/{index}.jpg" for index in range(10)]


class Api:
    """``requests`` with the base URL, the API prefix and the key filled in."""

    def __init__(self, emulator: PhotaEmulator, session: requests.Session) -> None:
        self.emulator = emulator
        self.session = session
        self.prefix = emulator.base_url + API_PREFIX
        self.headers = {"X-API-Key": emulator.api_key}

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.prefix + path, headers=self.headers, timeout=30, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.post(self.prefix + path, json=body, headers=self.headers, timeout=30, **kwargs)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.prefix + path, headers=self.headers, timeout=30)

    def create_profile(self, **fields: Any) -> str:
        response = self.post("/profiles/add", {"image_urls": TRAINING_URLS, **fields})
        assert response.status_code == 200, response.text
        return str(response.json()["profile_id"])

    def ready_profile(self, **fields: Any) -> str:
        profile_id = self.create_profile(**fields)
        self.emulator.advance(self.emulator.training_seconds)
        assert self.emulator.profile_status(profile_id) == "READY"
        return profile_id
