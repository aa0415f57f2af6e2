"""Typed errors of the Phota provider, and which of them are worth retrying.

The retry policy asks :func:`is_retryable`; operators ask :attr:`PhotaError.retry_task` to decide whether a failure
should use Airflow's task retries at all (a bad prompt or a missing key fails the same way every time).
Messages never contain the API key: they are built from the status, the API's ``detail`` and the request id.
Every error subclasses Airflow's ``AirflowException``, so a DAG's ``except AirflowException`` still catches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_phota._compat import AirflowException
from airflow_provider_phota.contract import ErrorType, Violation, error_detail


class PhotaError(AirflowException):
    """Base class of every error the provider raises.

    ``attempts`` is how many attempts the retry policy made before it gave up; the message ends with
    "(after N attempts)" when there was more than one.
    """

    retry_task = True  # may an Airflow task retry help?
    attempts = 1

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (after {self.attempts} attempts)" if self.attempts > 1 else text


class PhotaValidationError(PhotaError, ValueError):
    """Bad input, found before any request was sent. Names each field and what it allows."""

    retry_task = False

    def __init__(self, violations: Sequence[Violation], *, context: str = "") -> None:
        self.violations = list(violations)
        self.fields = [v.field for v in self.violations]
        lines = "; ".join(v.describe() for v in self.violations)
        super().__init__(f"Invalid {context + ' ' if context else ''}arguments: {lines}")

    @property
    def field(self) -> str:
        return self.fields[0] if self.fields else ""


def raise_if_invalid(violations: Sequence[Violation], context: str) -> None:
    """Raise a :class:`PhotaValidationError` for ``violations``, if there are any; ``context`` names the caller."""
    if violations:
        raise PhotaValidationError(violations, context=context)


class PhotaCostLimitError(PhotaError):
    """A task's worst-case cost is above its ``max_cost_usd``, or unknown while a limit is set; nothing was sent."""

    retry_task = False


class PhotaAPIError(PhotaError):
    """The API answered with an error status."""

    default_type: str | None = None

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        error_type: str | None = None,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.detail = detail
        self.error_type = error_type or self.default_type
        self.request_id = request_id
        self.method = method
        self.path = path
        where = f" {method} {path}" if method else ""
        kind = f" {self.error_type}" if self.error_type else ""
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"Phota API{where} answered {status}{kind}: {detail or 'no detail'}{rid}")


class PhotaBadRequestError(PhotaAPIError):
    """400: the service refused the request as invalid."""

    retry_task = False
    default_type = ErrorType.INVALID_REQUEST


class PhotaContentModerationError(PhotaBadRequestError):
    """400 ``CONTENT_MODERATION``: the prompt or an image was blocked."""

    default_type = ErrorType.CONTENT_MODERATION


class PhotaAuthenticationError(PhotaAPIError):
    """401 (invalid key) or 403 (missing key)."""

    retry_task = False
    default_type = ErrorType.UNAUTHORIZED


class PhotaInsufficientCreditError(PhotaAPIError):
    """402: the prepaid balance is used up; retrying cannot help until someone tops it up."""

    retry_task = False
    default_type = ErrorType.INSUFFICIENT_CREDIT


class PhotaNotFoundError(PhotaAPIError):
    retry_task = False
    default_type = ErrorType.NOT_FOUND


class PhotaUnprocessableError(PhotaAPIError):
    """422: the service's schema validation refused the body."""

    retry_task = False
    default_type = ErrorType.VALIDATION_ERROR


class PhotaRateLimitError(PhotaAPIError):
    """429: slow down; ``retry_after`` is the server's hint in seconds."""

    default_type = ErrorType.RATE_LIMITED

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class PhotaServerError(PhotaAPIError):
    """5xx: the service failed; worth retrying (a 504 on a synchronous call is refunded)."""

    default_type = ErrorType.INTERNAL


class PhotaTransportError(PhotaError):
    """No usable answer: the connection failed or dropped, the call timed out, or a 2xx body was malformed."""

    def __init__(self, message: str, *, method: str = "", path: str = "", request_id: str | None = None) -> None:
        self.method = method
        self.path = path
        self.request_id = request_id
        super().__init__(f"{method} {path}: {message}" if method else message)


class PhotaConnectionError(PhotaTransportError):
    """The connection failed or dropped. ``before_send`` is True when the request surely never reached the server."""

    def __init__(self, message: str, *, before_send: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.before_send = before_send


class PhotaTLSError(PhotaConnectionError):
    """The TLS handshake failed for good: the server's certificate was refused (an unknown CA, another host, expired)
    or the server does not speak TLS. Another attempt fails the same way, so it is never retried."""

    retry_task = False


class PhotaTimeoutError(PhotaTransportError):
    """The client gave up waiting for the answer."""


class PhotaMalformedResponseError(PhotaTransportError):
    """A 2xx response whose body is not the documented JSON."""


class PhotaJobFailedError(PhotaError):
    """An async job ended in FAILED; carries the job's error type and message."""

    def __init__(self, job_id: str, error_type: str | None, message: str | None) -> None:
        self.job_id = job_id
        self.error_type = error_type or ErrorType.JOB_FAILED
        self.error_message = message or ""
        # Moderation and invalid input fail the same way on every retry.
        self.retry_task = self.error_type not in (ErrorType.CONTENT_MODERATION, ErrorType.INVALID_REQUEST)
        super().__init__(f"Phota job {job_id} failed: {self.error_type}: {self.error_message or 'no message'}")


_STATUS_ERRORS: dict[int, type[PhotaAPIError]] = {
    400: PhotaBadRequestError,
    401: PhotaAuthenticationError,
    402: PhotaInsufficientCreditError,
    403: PhotaAuthenticationError,
    404: PhotaNotFoundError,
    422: PhotaUnprocessableError,
    429: PhotaRateLimitError,
}


def api_error(
    status: int,
    body: Any,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    method: str = "",
    path: str = "",
) -> PhotaAPIError:
    """The typed error for an error response (api-decisions D8, D9); the header's request id wins over the body's."""
    detail, error_type, body_request_id = error_detail(body)
    cls: type[PhotaAPIError]
    if status == 400 and error_type == ErrorType.CONTENT_MODERATION:
        cls = PhotaContentModerationError
    elif status >= 500:
        cls = PhotaServerError
    else:
        cls = _STATUS_ERRORS.get(status, PhotaAPIError)
    kwargs: dict[str, Any] = {
        "error_type": error_type,
        "request_id": request_id or body_request_id,
        "method": method,
        "path": path,
    }
    if cls is PhotaRateLimitError:
        kwargs["retry_after"] = retry_after
    return cls(status, detail, **kwargs)


RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_retryable(error: BaseException) -> bool:
    """The one answer to "is another attempt worth it?", for the sync and the async client alike."""
    if isinstance(error, PhotaAPIError):
        return error.status in RETRYABLE_STATUSES
    return isinstance(error, PhotaTransportError) and not isinstance(error, PhotaTLSError)


def surely_not_processed(error: BaseException) -> bool:
    """True when the failed request certainly did no work on the server, so resending it cannot duplicate anything.

    429 and 503 are refusals before processing; a connection that failed before the request was sent never
    reached the server. Everything else that is retryable (500, 502, 504, a dropped connection, a read timeout, a
    malformed body) is ambiguous: the work may have happened.
    """
    if isinstance(error, PhotaAPIError):
        return error.status in (429, 503)
    return isinstance(error, PhotaConnectionError) and error.before_send
