"""One retry policy for the sync and the async client, built on tenacity.

Retried: 429 (honouring ``Retry-After``, capped), 500/502/503/504, connection errors, timeouts and malformed 2xx
bodies. Never retried: 400/401/402/403/404/422 and TLS failures for good (a refused certificate, a server that does
not speak TLS: :class:`~airflow_provider_phota.exceptions.PhotaTLSError`), which fail the same way every time. The
decision itself lives in :func:`airflow_provider_phota.exceptions.is_retryable`; this module only decides how long
to wait and how often.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import tenacity

from airflow_provider_phota import metrics
from airflow_provider_phota.contract import Violation
from airflow_provider_phota.exceptions import PhotaError, PhotaRateLimitError, PhotaValidationError, is_retryable

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
    so a confused server cannot park a worker for an hour. An error raised after more than one attempt says how
    many were made (:attr:`PhotaError.attempts`).

    :param max_attempts: attempts per call, the first included (1: no retries).
    :param initial_wait: seconds of the first backoff.
    :param max_wait: longest backoff in seconds.
    :param max_retry_after: longest wait in seconds a 429's ``Retry-After`` can ask for.
    """

    max_attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            problems.append(Violation("max_attempts", f"{self.max_attempts!r} is out of range", "an integer >= 1"))
        for name in ("initial_wait", "max_wait", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                problems.append(Violation(name, f"{value!r} is out of range", "a number of seconds >= 0"))
        if problems:
            raise PhotaValidationError(problems, context="RetryPolicy")

    def wait_seconds(self, attempt_number: int, error: BaseException | None) -> float:
        """Seconds to sleep after failed attempt ``attempt_number`` (1-based)."""
        if isinstance(error, PhotaRateLimitError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_wait, self.initial_wait * 2 ** (attempt_number - 1))
        return random.uniform(self.initial_wait / 2, max(ceiling, self.initial_wait / 2))

    def _tenacity_kwargs(
        self,
        retry_if: Callable[[BaseException], bool],
        log: Log,
        *,
        attempts_done: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """tenacity's settings for the policy; ``attempts_done`` attempts already ran outside tenacity. Each retry
        counts in the ``phota.request_retries`` metric, with ``tags``."""

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.wait_seconds(state.attempt_number + attempts_done, error)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            message = "Phota call failed (attempt %d of %d): %s; retrying in %.1f s"
            attempt = state.attempt_number + attempts_done
            log.warning(message, attempt, self.max_attempts, error, state.upcoming_sleep)
            metrics.incr(metrics.REQUEST_RETRIES, 1, tags)

        return {
            "stop": tenacity.stop_after_attempt(self.max_attempts - attempts_done),
            "wait": wait,
            "retry": tenacity.retry_if_exception(retry_if),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def call(
        self,
        attempt: Callable[[], T],
        log: Log,
        retry_if: Callable[[BaseException], bool] = is_retryable,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> T:
        """Run ``attempt`` under the policy; a failure ``retry_if`` accepts is retried after a backoff. ``tags``
        label the retry metric (:func:`airflow_provider_phota.metrics.request_tags`)."""
        retrying = tenacity.Retrying(**self._tenacity_kwargs(retry_if, log, tags=tags))
        try:
            return retrying(attempt)
        except PhotaError as error:
            error.attempts = retrying.statistics["attempt_number"]
            raise

    async def acall(
        self,
        attempt: Callable[[], Awaitable[T]],
        log: Log,
        retry_if: Callable[[BaseException], bool] = is_retryable,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> T:
        """:meth:`call` for coroutines: the same policy, sleeping with ``asyncio.sleep``.

        The first attempt runs without tenacity, which takes over only after a retryable failure: a triggerer polls
        thousands of waits, and building tenacity's async state for every poll cost about 80 us of CPU per call
        (the trigger-scale benchmark's CPU against a bare aiohttp loop went from about 1.1x to 1.9x).
        """
        try:
            return await attempt()
        except Exception as error:
            if self.max_attempts == 1 or not retry_if(error):
                raise
            seconds = self.wait_seconds(1, error)
            message = "Phota call failed (attempt %d of %d): %s; retrying in %.1f s"
            log.warning(message, 1, self.max_attempts, error, seconds)
            metrics.incr(metrics.REQUEST_RETRIES, 1, tags)
        await asyncio.sleep(seconds)
        retrying = tenacity.AsyncRetrying(**self._tenacity_kwargs(retry_if, log, attempts_done=1, tags=tags))
        try:
            return await retrying(attempt)
        except PhotaError as error:
            error.attempts = 1 + retrying.statistics["attempt_number"]
            raise

    def attempts(
        self,
        log: Log,
        retry_if: Callable[[BaseException], bool] = is_retryable,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[tenacity.AttemptManager]:
        """The policy as tenacity's loop, for calls that keep state from one attempt to the next: each item is a
        context manager around one attempt (``for attempt in policy.attempts(log): with attempt: ...``); an
        exception ends the attempt, and the loop decides whether another one follows."""
        retrying = tenacity.Retrying(**self._tenacity_kwargs(retry_if, log, tags=tags))
        try:
            yield from retrying
        except PhotaError as error:
            error.attempts = retrying.statistics["attempt_number"]
            raise
