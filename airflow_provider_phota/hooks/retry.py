"""One retry policy for the sync and the async client, built on tenacity.

Retried: 429 (honouring ``Retry-After``, capped), 500/502/503/504, connection errors, timeouts and malformed 2xx
bodies. Never retried: 400/401/402/403/404/422, which fail the same way every time. The decision itself lives in
:func:`airflow_provider_phota.exceptions.is_retryable`; this module only decides how long to wait and how often.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import tenacity

from airflow_provider_phota.exceptions import PhotaRateLimitError, is_retryable

T = TypeVar("T")


class Log(Protocol):
    """What the clients need of a logger: stdlib loggers and Airflow's structlog loggers both fit."""

    def isEnabledFor(self, level: int) -> bool: ...
    def log(self, level: int, event: Any, *args: Any, **kw: Any) -> Any: ...
    def warning(self, event: Any, *args: Any, **kw: Any) -> Any: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and how long between them.

    ``wait`` doubles from ``initial_wait`` up to ``max_wait`` with full jitter, so many workers hitting one
    overloaded service spread out. A 429's ``Retry-After`` replaces the backoff, capped at ``max_retry_after``
    so a confused server cannot park a worker for an hour.
    """

    max_attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 30.0
    max_retry_after: float = 120.0

    # Connection extras that tune the policy, and the attribute each one sets.
    EXTRA_FIELDS = {
        "max_attempts": "max_attempts",
        "retry_wait": "initial_wait",
        "retry_max_wait": "max_wait",
        "max_retry_after": "max_retry_after",
    }

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any], base: RetryPolicy | None = None) -> RetryPolicy:
        policy = base or cls()
        changes: dict[str, Any] = {}
        for extra, attribute in cls.EXTRA_FIELDS.items():
            value = extras.get(extra)
            if value not in (None, ""):
                changes[attribute] = int(value) if attribute == "max_attempts" else float(value)
        return replace(policy, **changes)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def wait_seconds(self, attempt_number: int, error: BaseException | None) -> float:
        """Seconds to sleep after failed attempt ``attempt_number`` (1-based)."""
        if isinstance(error, PhotaRateLimitError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_wait, self.initial_wait * 2 ** (attempt_number - 1))
        return random.uniform(self.initial_wait / 2, max(ceiling, self.initial_wait / 2))

    def _announce(self, attempt_number: int, error: BaseException | None, seconds: float, log: Log) -> None:
        log.warning("Phota call failed (attempt %d of %d): %s; retrying in %.1f s", attempt_number,
                    self.max_attempts, error, seconds)  # fmt: skip

    def _tenacity_kwargs(
        self, retry_if: Callable[[BaseException], bool], log: Log, *, attempts_done: int = 0
    ) -> dict[str, Any]:
        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.wait_seconds(state.attempt_number + attempts_done, error)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self._announce(state.attempt_number + attempts_done, error, state.upcoming_sleep, log)

        return {
            "stop": tenacity.stop_after_attempt(self.max_attempts - attempts_done),
            "wait": wait,
            "retry": tenacity.retry_if_exception(retry_if),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(self, log: Log, retry_if: Callable[[BaseException], bool] = is_retryable) -> tenacity.Retrying:
        return tenacity.Retrying(**self._tenacity_kwargs(retry_if, log))

    def call(self, attempt: Callable[[], T], log: Log, retry_if: Callable[[BaseException], bool] = is_retryable) -> T:
        """Run ``attempt`` under the policy.

        The first try runs bare: success is the common case, and building tenacity's state for every call costs
        more than parsing the answer. After a retryable failure, tenacity runs the remaining attempts with the same
        waits and log lines, so the policy behaves exactly as if tenacity had run from the start.
        """
        try:
            return attempt()
        except Exception as error:
            if self.max_attempts == 1 or not retry_if(error):
                raise
            seconds = self.wait_seconds(1, error)
            self._announce(1, error, seconds, log)
        time.sleep(seconds)
        return tenacity.Retrying(**self._tenacity_kwargs(retry_if, log, attempts_done=1))(attempt)

    async def acall(
        self, attempt: Callable[[], Awaitable[T]], log: Log, retry_if: Callable[[BaseException], bool] = is_retryable
    ) -> T:
        """:meth:`call` for coroutines: the same policy, sleeping with ``asyncio.sleep``."""
        try:
            return await attempt()
        except Exception as error:
            if self.max_attempts == 1 or not retry_if(error):
                raise
            seconds = self.wait_seconds(1, error)
            self._announce(1, error, seconds, log)
        await asyncio.sleep(seconds)
        retrying = tenacity.AsyncRetrying(**self._tenacity_kwargs(retry_if, log, attempts_done=1))
        return await retrying(attempt)
