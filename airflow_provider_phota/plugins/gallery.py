"""The ``phota`` Airflow plugin: a "Phota outputs" tab on DAG-run and task-instance pages, served by a FastAPI app.

Airflow 3.1 added ``fastapi_apps`` and ``external_views`` to plugins. On older versions (2.11, 3.0) this module
still imports and the plugin still loads, with no app and no views, and says so once in the log: the provider's
operators work there, only the gallery needs 3.1+.

The app itself lives in :mod:`airflow_provider_phota.plugins.app` and is built only when Airflow asks the plugin for
its ``fastapi_apps``, which only the API server (and ``airflow plugins``) does. Workers, triggerers and DAG
processors load plugins too (an ``ObjectStoragePath`` write in a task does): there the plugin is a class with two
dicts of views, and neither FastAPI nor ``airflow.api_fastapi`` is imported.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow import __version__
from airflow.plugins_manager import AirflowPlugin
from packaging.version import Version

log = logging.getLogger(__name__)

URL_PREFIX = "/phota"
"""Where the API server mounts the gallery app (``/phota/dags/<dag_id>/runs/<run_id>/...``)."""
RUN_VIEW_ROUTE = "phota-outputs"
"""The DAG-run tab: ``/dags/<dag_id>/runs/<run_id>/plugin/phota-outputs`` in the Airflow UI."""
TASK_VIEW_ROUTE = "phota-task-outputs"
"""The task-instance tab: ``/dags/<dag_id>/runs/<run_id>/tasks/<task_id>/plugin/phota-task-outputs``."""
MINIMUM_AIRFLOW = "3.1.0"


def gallery_supported(version: str | None = None) -> bool:
    """Whether this Airflow (or ``version``) has FastAPI plugin apps and external views: 3.1.0 and later."""

    if version is None:
        version = str(__version__)
    return Version(Version(version).base_version) >= Version(MINIMUM_AIRFLOW)


def gallery_views() -> list[dict[str, Any]]:
    """The two tabs; the UI fills in ``{DAG_ID}``, ``{RUN_ID}``, ``{TASK_ID}`` and ``{MAP_INDEX}``."""
    run_page = URL_PREFIX + "/dags/{DAG_ID}/runs/{RUN_ID}/gallery"
    return [
        {
            "name": "Phota outputs",
            "href": run_page,
            "destination": "dag_run",
            "url_route": RUN_VIEW_ROUTE,
        },
        {
            "name": "Phota outputs",
            "href": run_page + "?task_id={TASK_ID}&map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": TASK_VIEW_ROUTE,
        },
    ]


def _supported_here() -> bool:
    """Whether this Airflow can show the gallery; logs why not (once per process and question)."""
    try:
        supported = gallery_supported()
    except Exception as error:  # an unparsable version string: treat as unsupported rather than fail the load
        log.info("Phota gallery disabled: cannot read the Airflow version (%s)", error)
        return False
    if not supported:
        log.info(
            "Phota gallery disabled: it needs Airflow %s+ (FastAPI plugin apps and external views)", MINIMUM_AIRFLOW
        )
    return supported


def _fastapi_apps() -> list[dict[str, Any]]:
    """The gallery app, built now; ``[]``, with a log line, where it cannot work."""
    if not _supported_here():
        return []
    try:
        from airflow_provider_phota.plugins.app import create_app
    except ImportError as error:  # fastapi or Pillow missing from this environment
        log.warning("Phota gallery disabled: %s", error)
        return []
    return [{"name": "phota-gallery", "app": create_app(), "url_prefix": URL_PREFIX}]


class _BuiltOnFirstUse:
    """A class attribute computed on first read and kept: ``PhotaGalleryPlugin.fastapi_apps`` imports and builds
    the web app only in the process that reads it (the API server)."""

    def __init__(self, build: Any) -> None:
        self._build = build
        self._value: list[dict[str, Any]] | None = None

    def __get__(self, instance: object, owner: type | None = None) -> list[dict[str, Any]]:
        if self._value is None:
            self._value = self._build()
        return self._value


class PhotaGalleryPlugin(AirflowPlugin):
    """Thumbnails of the images a DAG run's Phota tasks wrote, inside the Airflow UI (Airflow 3.1+)."""

    name = "phota"
    fastapi_apps = _BuiltOnFirstUse(_fastapi_apps)
    external_views = gallery_views() if _supported_here() else []
