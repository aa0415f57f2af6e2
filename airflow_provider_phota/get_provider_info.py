"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

The connection type's form is declared here once (the YAML-style ``conn-fields`` and ``ui-field-behaviour`` that
Airflow 3.2+ reads without importing the hook); ``PhotaHook``'s legacy classmethods are generated from the same
dict, so the two can never disagree. Importing this module imports nothing else.
"""

from __future__ import annotations

from typing import Any

import airflow_provider_phota

_MODULE = "airflow_provider_phota"
INTEGRATION = "Phota"


def _numeric_field(
    label: str, default: int | float, description: str, *, minimum: int | float, exclusive: bool = False
) -> dict[str, Any]:
    """An extra holding a count (``int`` default: JSON ``integer``) or seconds (``float``: JSON ``number``), and its
    lower bound (``exclusive``: the bound itself is refused). The hook refuses a value out of range."""
    kind = "integer" if isinstance(default, int) else "number"
    bound = "exclusiveMinimum" if exclusive else "minimum"
    schema = {"type": [kind, "null"], "default": default, bound: minimum}
    return {"label": label, "schema": schema, "description": description}


def connection_type_info() -> dict[str, Any]:
    """The ``phota`` connection type: API key as password, API origin as host, tuning knobs as extras."""
    return {
        "hook-class-name": f"{_MODULE}.hooks.phota.PhotaHook",
        "hook-name": "Phota",
        "connection-type": "phota",
        "conn-fields": {
            "read_timeout": _numeric_field(
                "Read timeout (s)",
                660.0,
                "Seconds to wait for an answer (> 0); synchronous calls may run up to 600 s on the service.",
                minimum=0,
                exclusive=True,
            ),
            "connect_timeout": _numeric_field(
                "Connect timeout (s)", 10.0, "Seconds to open a connection (> 0).", minimum=0, exclusive=True
            ),
            "max_attempts": _numeric_field(
                "Max attempts", 5, "Attempts per call (>= 1) for 429, 5xx and connection errors.", minimum=1
            ),
            "retry_wait": _numeric_field(
                "Retry wait (s)", 1.0, "First backoff (>= 0); doubles up to the max wait, with jitter.", minimum=0
            ),
            "retry_max_wait": _numeric_field(
                "Retry max wait (s)", 30.0, "Longest backoff between attempts (>= 0).", minimum=0
            ),
            "max_retry_after": _numeric_field(
                "Max Retry-After (s)", 120.0, "Cap on a 429's Retry-After (>= 0).", minimum=0
            ),
            "price_table": {
                "label": "Price table (JSON)",
                "schema": {"type": ["string", "null"], "default": None},
                "description": 'Your rates over the list prices, e.g. {"images": {"nb2": {"plain": 0.05, '
                '"with_identity": 0.08}}}; see the docs, "Cost control, lineage and metrics".',
            },
            "ca_bundle": {
                "label": "CA bundle (path)",
                "schema": {"type": ["string", "null"], "default": None},
                "description": "A PEM file (or folder) of the CAs to trust for the Base URL's certificate, instead of "
                "the default ones: for a private CA or a TLS-inspecting proxy. A path on the workers and triggerers.",
            },
        },
        "ui-field-behaviour": {
            # The Port stays visible although the Base URL carries the port: Airflow 3.3's "Test" button in the
            # connection list sends the stored port, and port 0 when none is stored, which the API server refuses as
            # "differs from the stored connection" whether or not the form shows the field. A stored port (443)
            # is the way around it (docs/connection.md).
            "hidden-fields": ["schema", "login"],
            "relabeling": {"password": "API Key", "host": "Base URL"},
            "placeholders": {
                "host": "https://api.photalabs.com (or http://127.0.0.1:8089 for the local emulator)",
                "password": "your Phota API key (X-API-Key)",
                "port": "optional: the Base URL's port (443 for https) lets Airflow 3.3's list Test button work",
            },
        },
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-phota",
        "name": "Phota",
        "description": "Phota image API: identity profiles, edit, generate, enhance and remix, with deferrable waits.",
        "versions": [airflow_provider_phota.__version__],
        "integrations": [{"integration-name": INTEGRATION, "external-doc-url": "https://docs.photalabs.com"}],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{_MODULE}.hooks.phota"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"{_MODULE}.operators.profile",
                    f"{_MODULE}.operators.images",
                    f"{_MODULE}.operators.batch",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [f"{_MODULE}.sensors.phota"]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"{_MODULE}.triggers.phota",
                    f"{_MODULE}.triggers.batch",
                    f"{_MODULE}.triggers.events",
                ],
            }
        ],
        "connection-types": [connection_type_info()],
        # The "Phota outputs" gallery (Airflow 3.1+; loads with no views on older versions).
        "plugins": [{"name": "phota", "plugin-class": f"{_MODULE}.plugins.gallery.PhotaGalleryPlugin"}],
        # Shown by `airflow config list`; read in the API server only (plugins/callbacks.py).
        "config": {
            "phota": {
                "description": "Options of the Phota provider's plugin in the API server.",
                "options": {
                    "callback_conn_id": {
                        "description": "The Phota connection whose account's webhook secret verifies signed job "
                        "callbacks at POST /phota/callbacks (Airflow 3.1+).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "phota_callbacks",
                        "default": "phota_default",
                    }
                },
            }
        },
    }
