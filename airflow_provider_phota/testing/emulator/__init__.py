"""A local emulator of the Phota image API, for tests and offline development.

It speaks the HTTP API of the public Phota documentation (https://docs.photalabs.com) with the project's decisions
where the docs are silent (``docs/api-decisions.md``, cited as "api-decisions D<n>"; source pages are cited by their
tag from that page's "Source pages" table, e.g. [R-EDIT]). The request rules a client can check before sending
(enums, ranges, field sets) come from :mod:`airflow_provider_phota.contract`; on top of them the emulator makes the
checks only the service can make: the content of input images (JPEG, PNG, WebP or HEIC, readable, reachable when
fetched), that referenced profiles exist and are READY, and that a training set has a subject. It adds the server,
the state (profiles, jobs, ledger, files), a clock that tests can move, fault injection and an admin API.
``tests/emulator/test_conformance.py`` states the service's refusals as literal data, independently of the contract,
so a rule that is wrong there fails a row.

Run it in-process (``with PhotaEmulator() as emu: ...``; the server lives in a background thread with its own event
loop) or from the command line (``phota-emulator --port 8089``). See ``docs/emulator.md``.

Modules: ``state`` (state, ledger, clock), ``records`` (what tests read), ``media`` (image fetch, checks,
rendering), ``app`` (HTTP routes and jobs), ``admin`` (the ``/_emulator`` routes), ``server`` (the in-process
handle), ``cli``.
"""

from __future__ import annotations

from airflow_provider_phota.testing.emulator.cli import main
from airflow_provider_phota.testing.emulator.records import (
    CallbackDelivery,
    Charge,
    Download,
    JobView,
    ProfileView,
    RecordedRequest,
)
from airflow_provider_phota.testing.emulator.server import PhotaEmulator
from airflow_provider_phota.testing.emulator.state import (
    EMULATOR_MODEL_RATES,
    EMULATOR_PRICES,
    IDEMPOTENCY_SECONDS,
    MARKER_FAIL_JOB,
    MARKER_MODERATE,
    MARKER_NO_SUBJECT,
    MARKER_TRAINING_ERROR,
    TRAINING_ERROR_MESSAGE,
)

__all__ = [
    "EMULATOR_MODEL_RATES",
    "EMULATOR_PRICES",
    "IDEMPOTENCY_SECONDS",
    "MARKER_FAIL_JOB",
    "MARKER_MODERATE",
    "MARKER_NO_SUBJECT",
    "MARKER_TRAINING_ERROR",
    "TRAINING_ERROR_MESSAGE",
    "CallbackDelivery",
    "Charge",
    "Download",
    "JobView",
    "PhotaEmulator",
    "ProfileView",
    "RecordedRequest",
    "main",
]
