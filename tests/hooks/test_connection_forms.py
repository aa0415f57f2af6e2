"""The ways docs/connection.md says a Phota connection can be written, each reaching the (plain-HTTP) emulator."""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

import pytest

from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator

CONN_ENV = "AIRFLOW_CONN_PHOTA_DEFAULT"


def _uri_forms(emu: PhotaEmulator) -> dict[str, str]:
    port = urlsplit(emu.base_url).port
    key = quote(emu.api_key, safe="")
    return {
        # the scheme percent-encoded into the host; the port as the URI's port
        "uri, port apart": f"phota://:{key}@http%3A%2F%2F127.0.0.1:{port}",
        # the whole origin percent-encoded, as `quote(base_url, safe="")` writes it
        "uri, origin encoded": f"phota://:{key}@{quote(emu.base_url, safe='')}",
    }


@pytest.mark.parametrize("form", ["uri, port apart", "uri, origin encoded"])
def test_a_uri_connection_reaches_a_plain_http_host(
    phota_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    monkeypatch.setenv(CONN_ENV, _uri_forms(phota_emulator)[form])

    with PhotaHook() as hook:
        assert hook.settings.base_url == phota_emulator.base_url
        assert hook.test_connection()[0] is True
    assert phota_emulator.requests_to("/v1/phota/profiles/ids", "GET")


def test_a_json_connection_with_extras(phota_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {
        "conn_type": "phota",
        "host": phota_emulator.base_url,
        "password": phota_emulator.api_key,
        "extra": {"max_attempts": 2, "connect_timeout": 3},
    }
    monkeypatch.setenv(CONN_ENV, json.dumps(connection))

    with PhotaHook() as hook:
        assert hook.test_connection()[0] is True
        assert (hook.settings.retry.max_attempts, hook.settings.connect_timeout) == (2, 3.0)


def test_a_stored_port_equal_to_the_urls_changes_nothing(
    phota_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The way around Airflow 3.3's list Test button (it sends port 0 for a connection without one): storing the
    Base URL's own port in the Port field leaves the origin as it was."""
    port = urlsplit(phota_emulator.base_url).port
    for host in (phota_emulator.base_url, "http://127.0.0.1"):
        connection = {"conn_type": "phota", "host": host, "port": port, "password": phota_emulator.api_key}
        monkeypatch.setenv(CONN_ENV, json.dumps(connection))
        with PhotaHook() as hook:
            assert hook.settings.base_url == phota_emulator.base_url
            assert hook.test_connection()[0] is True
