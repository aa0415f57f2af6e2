"""Testing helpers: a local emulator of the Phota API and a pytest plugin.

The emulator (aiohttp + Pillow; the package :mod:`airflow_provider_phota.testing.emulator`) is imported lazily, so
importing this package, or the opt-in pytest plugin (``pytest_plugins =
["airflow_provider_phota.testing.pytest_plugin"]`` in a conftest, see ``docs/testing.md``), stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_phota.testing.emulator import (
        CallbackDelivery,
        Charge,
        Download,
        PhotaEmulator,
        RecordedRequest,
    )

__all__ = ["CallbackDelivery", "Charge", "Download", "PhotaEmulator", "RecordedRequest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from airflow_provider_phota.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
