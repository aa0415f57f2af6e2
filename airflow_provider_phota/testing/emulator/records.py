"""The records a test reads from the emulator (requests, charges, downloads, callbacks, views) and the fault spec."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the emulator saw it; ``status`` is 0 when the connection was dropped by a fault."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    status: int
    request_id: str
    headers: dict[str, str]
    time: float


@dataclass(frozen=True)
class Charge:
    """A ledger line. Refunds have kind ``refund`` and a negative amount, so the ledger sums to the bill."""

    kind: str  # "profile" | "images" | "refund"
    endpoint: str
    units: int
    amount_usd: float
    ref: str  # profile_id, job_id or (sync image calls) request_id
    with_identity: int = 0


@dataclass(frozen=True)
class Download:
    """One request to a signed download URL (not an API request, so it is not in ``requests``)."""

    path: str
    status: int
    size: int
    time: float


@dataclass(frozen=True)
class CallbackDelivery:
    """One callback POST (api-decisions D6). ``status`` is None when it could not be delivered; ``error`` says why."""

    job_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    error: str | None = None


@dataclass
class Fault:
    """An injected failure for the next ``count`` requests whose path matches ``path_glob``."""

    path_glob: str
    status: int | None = None
    count: int = 1
    retry_after: float | None = None
    delay: float | None = None
    drop: bool = False
    malformed: bool = False
    after: bool = False
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and fnmatch.fnmatchcase(path, self.path_glob)


class ProfileView(NamedTuple):
    tag: str | None
    tier: str
    status: str
    created: float


class JobView(NamedTuple):
    endpoint: str
    status: str
    client_request_id: str | None
    created: float
    result: dict[str, Any] | None
    error: dict[str, str] | None
