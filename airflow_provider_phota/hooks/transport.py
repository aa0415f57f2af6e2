"""Sending :class:`~airflow_provider_phota.contract.ApiRequest` objects over HTTP, sync (requests) and async (aiohttp).

Both clients share everything but the socket work: the connection settings, the response interpretation (status
-> typed error, JSON decoding, request id), the call log line and the retry policy. The API key is added to the
``X-API-Key`` header of API requests only: never to signed download URLs, never to a log line or an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import socket
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

from airflow_provider_phota import metrics
from airflow_provider_phota.contract import (
    API_KEY_HEADER,
    API_PREFIX,
    DEFAULT_BASE_URL,
    REQUEST_ID_HEADER,
    SERVER_TIME_CAP_SECONDS,
    ApiRequest,
    MalformedResponse,
    Violation,
    parse_retry_after,
)
from airflow_provider_phota.exceptions import (
    PhotaConnectionError,
    PhotaError,
    PhotaMalformedResponseError,
    PhotaTimeoutError,
    PhotaTLSError,
    PhotaValidationError,
    api_error,
    is_retryable,
)
from airflow_provider_phota.hooks.retry import Log, RetryPolicy

if TYPE_CHECKING:
    import ssl

    import aiohttp


def base_url_from(host: str | None, port: int | None = None) -> str:
    """The API origin from a connection's host and port.

    A host with a scheme is used as it is (``http://127.0.0.1:8089`` for a local emulator), one without a scheme
    means https, an empty host means the public service. A trailing ``/v1/phota`` is tolerated and dropped.
    """
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        host = "https://" + host
    if host.endswith(API_PREFIX):
        host = host[: -len(API_PREFIX)]
    parts = urlsplit(host)
    if port and parts.port is None:
        # netloc, not hostname: hostname drops an IPv6 address's brackets (and any userinfo).
        host = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return host


@dataclass(frozen=True)
class ConnectionExtra:
    """A numeric connection extra: the setting it fills and the values it allows."""

    setting: str  # the ConnectionSettings or RetryPolicy attribute
    minimum: float
    above_minimum: bool = False  # the minimum itself is not allowed (a timeout of 0 s)
    integer: bool = False

    @property
    def allowed(self) -> str:
        kind = "an integer" if self.integer else "a number of seconds"
        return f"{kind} {'>' if self.above_minimum else '>='} {self.minimum:g}"

    def read(self, label: str, value: Any) -> float | int | Violation:
        """The value as a number, or the violation of field ``label``. Numeric strings are accepted (a connection
        form may store them)."""
        number: Any = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return Violation(label, f"{value!r} is not a number", self.allowed)
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            return Violation(label, f"{value!r} is not a number", self.allowed)
        if self.integer and number != int(number):
            return Violation(label, f"{value!r} is not an integer", self.allowed)
        if number < self.minimum or (self.above_minimum and number == self.minimum):
            return Violation(label, f"{value!r} is out of range", self.allowed)
        return int(number) if self.integer else float(number)


@dataclass(frozen=True)
class CaBundleExtra:
    """The ``ca_bundle`` extra: a PEM file (or a folder of them) of the CAs to trust for the API's certificate,
    instead of the default ones; for a private CA or a TLS-inspecting proxy."""

    setting: str = "ca_bundle"

    def read(self, label: str, value: Any) -> str | Violation:
        path = os.path.expanduser(str(value).strip())
        if not os.path.exists(path):
            return Violation(label, f"{path!r} does not exist", "the path of a PEM file or folder of CA certificates")
        return path


# The HTTP extras a connection may set (the hook adds ``price_table``); the provider info's ``conn-fields`` declare
# the same names.
HTTP_EXTRAS: dict[str, ConnectionExtra | CaBundleExtra] = {
    "read_timeout": ConnectionExtra("read_timeout", 0, above_minimum=True),
    "connect_timeout": ConnectionExtra("connect_timeout", 0, above_minimum=True),
    "max_attempts": ConnectionExtra("max_attempts", 1, integer=True),
    "retry_wait": ConnectionExtra("initial_wait", 0),
    "retry_max_wait": ConnectionExtra("max_wait", 0),
    "max_retry_after": ConnectionExtra("max_retry_after", 0),
    "ca_bundle": CaBundleExtra(),
}
RETRY_EXTRAS = frozenset({"max_attempts", "retry_wait", "retry_max_wait", "max_retry_after"})


@dataclass(frozen=True)
class ConnectionSettings:
    """What a client needs from an Airflow connection; built once per hook, sync or async."""

    base_url: str
    api_key: str = field(repr=False)
    # Synchronous calls may legitimately run up to the service's 600 s cap; wait a little longer than that.
    read_timeout: float = SERVER_TIME_CAP_SECONDS + 60.0
    connect_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ca_bundle: str | None = None  # the CAs trusted for the API; None: the environment's (REQUESTS_CA_BUNDLE...)

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        port: int | None,
        password: str | None,
        extras: Mapping[str, Any],
        retry: RetryPolicy | None = None,
        read_timeout: float | None = None,
        conn_id: str = "",
    ) -> ConnectionSettings:
        """Settings from a connection's fields. One rule: an explicit argument (``retry``, ``read_timeout``) wins over
        the connection's extras, which win over the defaults; an explicit ``retry`` replaces every retry extra.
        A zero is a value, not "unset": an extra out of its range raises :class:`PhotaValidationError`."""
        if not password:
            raise PhotaError("The Phota connection has no API key: set it as the connection's password.")
        settings: dict[str, Any] = {}
        policy: dict[str, Any] = {}
        for name, extra in HTTP_EXTRAS.items():
            value = extras.get(name)
            if value in (None, "") or (retry is not None and name in RETRY_EXTRAS):
                continue  # unset (an empty form field), or replaced by the explicit policy
            target = policy if name in RETRY_EXTRAS else settings
            target[extra.setting] = extra.read(f"{name} (connection extra)", value)
        if read_timeout is not None:
            settings["read_timeout"] = HTTP_EXTRAS["read_timeout"].read("read_timeout", read_timeout)
        problems = [value for value in (*settings.values(), *policy.values()) if isinstance(value, Violation)]
        if problems:
            raise PhotaValidationError(problems, context=f"connection {conn_id!r}" if conn_id else "connection")
        return cls(
            base_url=base_url_from(host, port),
            api_key=password,
            retry=retry if retry is not None else RetryPolicy(**policy),
            **settings,
        )

    def http_arguments(self, request: ApiRequest) -> dict[str, Any]:
        """What both HTTP clients pass for an API request: method, URL, JSON body, query and the key header."""
        return {
            "method": request.method,
            "url": self.base_url + request.path,
            "json": request.json,
            "params": request.params,
            "headers": {API_KEY_HEADER: self.api_key},
        }


@dataclass(frozen=True)
class ApiResponse:
    """A successful answer: the decoded JSON (or raw bytes for binary endpoints) and its request id."""

    status: int
    body: Any
    request_id: str | None


def interpret(request: ApiRequest, status: int, headers: Mapping[str, str], content: bytes | bytearray) -> ApiResponse:
    """Turn a raw HTTP answer into an :class:`ApiResponse` or the typed error; shared by both clients."""
    request_id = headers.get(REQUEST_ID_HEADER)
    if 200 <= status < 300:
        if request.binary:
            _require_image(request, headers, request_id)
            return ApiResponse(status, content, request_id)
        try:
            return ApiResponse(status, json.loads(content), request_id)
        except ValueError:
            raise PhotaMalformedResponseError(
                f"answered {status} with a body that is not JSON ({len(content)} bytes)",
                method=request.method,
                path=request.path,
                request_id=request_id,
            ) from None
    if status == 429:
        metrics.incr(metrics.RATE_LIMITED, 1, metrics.request_tags(request))
    try:
        body: Any = json.loads(content) if content else None
    except ValueError:
        body = content[:500].decode("utf-8", "replace")
    raise api_error(
        status,
        body,
        request_id=request_id,
        retry_after=parse_retry_after(headers.get("Retry-After"), now=time.time()),
        method=request.method,
        path=request.path,
    )


T = TypeVar("T")
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
# What an image answer may be labelled as; anything else (an HTML or JSON page from a proxy) is not an image.
IMAGE_CONTENT_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")


def _require_image(request: ApiRequest, headers: Mapping[str, str], request_id: str | None) -> None:
    """A 2xx that should carry an image but is labelled as something else is a malformed (retryable) answer."""
    content_type = headers.get("Content-Type", "").strip().lower()
    if not content_type.startswith(IMAGE_CONTENT_TYPES):
        problem = f"expected an image, got {content_type or 'no Content-Type'}"
        raise PhotaMalformedResponseError(problem, method=request.method, path=request.path, request_id=request_id)


def parsed(request: ApiRequest, response: ApiResponse, parse: Callable[[ApiResponse], T]) -> T:
    """Apply a contract parser; a 2xx body of the wrong shape becomes a (retryable) malformed-response error."""
    try:
        return parse(response)
    except MalformedResponse as error:
        raise PhotaMalformedResponseError(
            str(error), method=request.method, path=request.path, request_id=response.request_id
        ) from None


def _as_is(response: ApiResponse) -> ApiResponse:
    return response


def log_call(
    log: Log,
    level: int,
    request: ApiRequest,
    status: int | str,
    started: float,
    request_id: str | None,
) -> None:
    """The one log line of a call: method, path, status, elapsed time, request id. No key, no bodies."""
    if log.isEnabledFor(level):
        elapsed_ms = (time.monotonic() - started) * 1000
        message = "Phota %s %s -> %s in %.0f ms (request id %s)"
        log.log(level, message, request.method, request.path, status, elapsed_ms, request_id or "-")


# --- sync -------------------------------------------------------------------------------------------------------


class SyncClient:
    """requests-based client: one ``Session`` (keep-alive) per hook."""

    def __init__(self, settings: ConnectionSettings, log: Log) -> None:
        self.settings = settings
        self.log = log
        # the level of the one line per successful call; a batch of thousands of calls lowers it to DEBUG
        self.call_level = logging.INFO
        self.session = requests.Session()
        # requests re-reads the whole environment (proxies, CA bundle) on every call when trust_env is on. Read it
        # once for the API origin and keep the answer: the per-call benchmark measures 0.98-1.05x a raw session
        # with this, 0.80-0.86x without (its goal is 0.9x).
        environment = self.session.merge_environment_settings(settings.base_url, {}, None, None, None)
        self.session.proxies.update(environment["proxies"])
        self.session.verify = settings.ca_bundle or environment["verify"]
        self.session.trust_env = False
        self._timeout = (settings.connect_timeout, settings.read_timeout)

    @staticmethod
    def _download_settings(url: str) -> dict[str, Any]:
        """Proxy and CA settings for a download host (often not the API's: a CDN), read from the environment."""
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")  # as requests reads them
        return {"proxies": requests.utils.get_environ_proxies(url), "verify": bundle or True}

    def close(self) -> None:
        self.session.close()

    def send(
        self,
        request: ApiRequest,
        parse: Callable[[ApiResponse], T] = _as_is,  # type: ignore[assignment]
        retry_if: Callable[[BaseException], bool] = is_retryable,
    ) -> T:
        """Send with the retry policy; ``parse`` runs inside each attempt, so a malformed body is retried too."""
        return self.settings.retry.call(
            lambda: parsed(request, self.send_once(request), parse),
            self.log,
            retry_if,
            tags=metrics.request_tags(request),
        )

    def send_once(self, request: ApiRequest) -> ApiResponse:
        """One attempt, without the retry policy: the answer, or the typed error."""
        started = time.monotonic()
        arguments = self.settings.http_arguments(request)
        with self._translate_errors(request, arguments["url"], started):
            response = self.session.request(**arguments, timeout=self._timeout)
            content = response.content
        request_id = response.headers.get(REQUEST_ID_HEADER)
        log_call(self.log, self.call_level, request, response.status_code, started, request_id)
        return interpret(request, response.status_code, response.headers, content)

    def download(self, url: str, consume: Callable[[Iterator[bytes]], T]) -> T:
        """Stream a signed download URL into ``consume`` (which writes it somewhere), with the retry policy.

        Each attempt is the whole transfer: a connection cut midway is retried from the start, and ``consume``
        is expected to discard what it got (the atomic writer does). The URL carries its own token, so the API
        key is never sent with it.
        """
        request = ApiRequest("GET", urlsplit(url).path)

        def attempt() -> T:
            started = time.monotonic()
            with self._translate_errors(request, url, started):
                response = self.session.get(url, stream=True, timeout=self._timeout, **self._download_settings(url))
                with response:
                    if response.status_code >= 400:
                        interpret(request, response.status_code, response.headers, response.content)
                    log_call(self.log, self.call_level, request, response.status_code, started, None)
                    _require_image(request, response.headers, None)
                    return consume(response.iter_content(chunk_size=DOWNLOAD_CHUNK_BYTES))

        return self.settings.retry.call(attempt, self.log, tags=metrics.request_tags(request))

    @contextmanager
    def _translate_errors(self, request: ApiRequest, url: str, started: float) -> Iterator[None]:
        where = {"method": request.method, "path": request.path}
        try:
            yield
        except requests.exceptions.ConnectTimeout:
            log_call(self.log, logging.WARNING, request, "connect timeout", started, None)
            problem = f"no connection to {_host_of(url)} within {self.settings.connect_timeout:g} s"
            raise PhotaConnectionError(problem, before_send=True, **where) from None
        except requests.exceptions.Timeout:
            log_call(self.log, logging.WARNING, request, "timeout", started, None)
            raise PhotaTimeoutError(f"no answer within {self.settings.read_timeout:g} s", **where) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            problem, before_send = _connection_problem(error, _host_of(url))
            log_call(self.log, logging.WARNING, request, "connection error", started, None)
            raise _connection_error(problem, before_send, _causes(error), where) from None


def _host_of(url: str) -> str:
    """``host:port`` of a URL, the port filled in from the scheme; what a connection error names."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it wraps (urllib3's ``reason``, ``__cause__``, ``__context__``, exception
    arguments), breadth first, so the innermost comes last. Only exceptions are followed: an ``ssl.SSLError``'s
    ``reason``, for one, is a string."""
    found = [error]
    for item in found:  # the list grows while it is walked
        for link in (getattr(item, "reason", None), item.__cause__, item.__context__, *item.args):
            if isinstance(link, BaseException) and not any(link is known for known in found):
                found.append(link)
    return found


def _connection_problem(error: BaseException, host: str) -> tuple[str, bool]:
    """The provider's description of a requests connection error, and whether the request was surely never sent
    (the connection was never opened: refused, unresolvable, or a certificate refused in the handshake)."""

    causes = _causes(error)
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return _tls_problem(cause, host), isinstance(cause, ssl.SSLCertVerificationError)
    if any(isinstance(cause, NameResolutionError) for cause in causes):
        return f"cannot resolve the host of {host}", True
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return f"connection refused by {host}", True
    if any(isinstance(cause, NewConnectionError) for cause in causes):
        return f"cannot connect to {host}: {_summary(causes[-1])}", True
    return f"the connection to {host} broke: {_summary(causes[-1])}", False


def _tls_for_good(error: BaseException) -> bool:
    """A TLS failure another attempt cannot fix: a refused certificate, or a server that does not speak TLS."""

    return isinstance(error, ssl.SSLCertVerificationError) or getattr(error, "reason", None) == "WRONG_VERSION_NUMBER"


def _connection_error(
    problem: str, before_send: bool, causes: list[BaseException], where: Mapping[str, str]
) -> PhotaConnectionError:
    """The error to raise: :class:`PhotaTLSError` (never retried) when a cause is a TLS failure for good."""
    if any(_tls_for_good(cause) for cause in causes):
        return PhotaTLSError(problem, before_send=True, **where)
    return PhotaConnectionError(problem, before_send=before_send, **where)


def _summary(error: BaseException) -> str:
    """``Type: first line of the message``; the message alone when it already starts with the type's name."""
    name, text = type(error).__name__, str(error).partition("\n")[0][:200]
    if not text or text.startswith(name):
        return text or name
    return f"{name}: {text}"


_OPENSSL_NOISE = re.compile(r"^\[SSL: [A-Z0-9_]+\] | \(_ssl\.c:\d+\)$")


def _tls_problem(error: ssl.SSLError, host: str) -> str:
    """``TLS error with HOST: certificate verify failed: ...``, with a hint for a plain-HTTP server or a private CA."""

    text = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], str) else str(error)
    problem = f"TLS error with {host}: {_OPENSSL_NOISE.sub('', text)}"
    if error.reason == "WRONG_VERSION_NUMBER":
        problem += " (the server does not speak TLS: for a plain-HTTP server the connection's host needs http://)"
    elif isinstance(error, ssl.SSLCertVerificationError):
        problem += (
            " (not retried: to trust a private CA, set the connection's ca_bundle extra to its PEM file;"
            " see docs/connection.md)"
        )
    return problem


# --- async ------------------------------------------------------------------------------------------------------


class _Share:
    """A loop's session, how many hooks hold it, and the async generator that closes it with the loop."""

    __slots__ = ("closer", "session", "users")

    def __init__(self, session: aiohttp.ClientSession, closer: AsyncGenerator[None, None]) -> None:
        self.session = session
        self.closer = closer
        self.users = 0


def drop_closed_loops(per_loop: dict[asyncio.AbstractEventLoop, Any]) -> None:
    """Forget the entries of event loops that are closed: nothing can run on them again, and a new loop must
    never be handed what an old one left behind."""
    for loop in [loop for loop in per_loop if loop.is_closed()]:
        del per_loop[loop]


class _SharedSessions:
    """One aiohttp session per event loop, shared by every hook (and trigger) running in that loop.

    A triggerer holding a thousand waits then keeps one connection pool instead of a thousand. The API key
    travels per request, so hooks of different connections can share the pool. A session closes when the last
    hook that uses it calls ``aclose()`` (``async with PhotaHook() as hook:`` does), and at the latest when its
    loop shuts down: each session is watched by an async generator started in its loop, which
    ``loop.shutdown_asyncgens()`` closes, and ``asyncio.run()`` (like ``asyncio.Runner`` and the triggerer) calls
    that before it closes the loop. So ``asyncio.run(PhotaHook().aget_job(job_id))`` leaves nothing open. A loop
    closed without ``shutdown_asyncgens()`` (a hand-made loop's ``close()``) cannot close its session any more:
    its entry is dropped, never reused.
    """

    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, _Share] = {}

    async def acquire(self) -> aiohttp.ClientSession:
        """A share of the running loop's session, opened on first use."""
        import aiohttp

        loop = asyncio.get_running_loop()
        drop_closed_loops(self._sessions)
        share = self._sessions.get(loop)
        if share is None or share.session.closed:
            # Timeouts are set per request (from each connection's settings); the pool itself has none.
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
            share = self._sessions[loop] = _Share(session, self._close_at_shutdown(loop, session))
            # The first step registers the generator with the loop (its asyncgen hooks), which closes it at
            # shutdown; it stops at the ``yield`` without awaiting anything.
            await share.closer.__anext__()
        share.users += 1
        return share.session

    async def _close_at_shutdown(
        self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            share = self._sessions.get(loop)
            if share is not None and share.session is session:
                del self._sessions[loop]
            await session.close()

    async def release(self, session: aiohttp.ClientSession) -> None:
        """Give back a share of the running loop's session; the last one closes it. A session of another loop, or
        one already closed with its loop, is not this loop's to close: nothing happens."""
        loop = asyncio.get_running_loop()
        share = self._sessions.get(loop)
        if share is None or share.session is not session:
            return
        share.users -= 1
        if share.users <= 0:
            # The entry is still there, so the generator has not started closing (its first step removes the
            # entry): closing it here is safe, and leaves nothing for the loop to finish.
            await share.closer.aclose()

    def users(self) -> int:
        """How many hooks hold a share of the running loop's session."""
        share = self._sessions.get(asyncio.get_running_loop())
        return 0 if share is None else share.users


shared_sessions = _SharedSessions()


class AsyncClient:
    """aiohttp-based client with the same contract, interpretation and retry policy as :class:`SyncClient`."""

    def __init__(self, settings: ConnectionSettings, log: Log) -> None:
        import aiohttp

        self.settings = settings
        self.log = log
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop ``_session`` belongs to
        self._timeout = aiohttp.ClientTimeout(sock_connect=settings.connect_timeout, sock_read=settings.read_timeout)
        # The session is shared by every connection in the loop, so the CA bundle goes with each request.
        self._ssl: ssl.SSLContext | bool = True if settings.ca_bundle is None else _ssl_context(settings.ca_bundle)

    async def loop_session(self) -> aiohttp.ClientSession:
        """This client's share of the running loop's session. A client used in one ``asyncio.run()`` and then in
        another gets the new loop's session: the old one closed with its loop."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session, self._loop = await shared_sessions.acquire(), loop
        return self._session

    async def aclose(self) -> None:
        """Give back this client's share of the session; a later call takes a new one."""
        session, self._session = self._session, None
        if session is not None:
            await shared_sessions.release(session)

    async def send(
        self,
        request: ApiRequest,
        parse: Callable[[ApiResponse], T] = _as_is,  # type: ignore[assignment]
        retry_if: Callable[[BaseException], bool] = is_retryable,
    ) -> T:
        async def attempt() -> T:
            return parsed(request, await self.send_once(request), parse)

        return await self.settings.retry.acall(attempt, self.log, retry_if, tags=metrics.request_tags(request))

    async def send_once(self, request: ApiRequest) -> ApiResponse:
        """One attempt, without the retry policy: the answer, or the typed error."""
        import aiohttp

        started = time.monotonic()
        arguments = self.settings.http_arguments(request)
        where = {"method": request.method, "path": request.path}
        session = await self.loop_session()
        try:
            async with session.request(**arguments, timeout=self._timeout, ssl=self._ssl) as response:
                content = await response.read()
                status, headers = response.status, response.headers
        except aiohttp.ClientConnectorError as error:  # the connection was never opened, TLS handshake included
            log_call(self.log, logging.WARNING, request, "connection error", started, None)
            problem = _connector_problem(error, _host_of(arguments["url"]))
            raise _connection_error(problem, True, [error.os_error], where) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            log_call(self.log, logging.WARNING, request, "timeout", started, None)
            raise PhotaTimeoutError(f"no answer within {self.settings.read_timeout:g} s", **where) from None
        except aiohttp.ClientError as error:
            log_call(self.log, logging.WARNING, request, "connection error", started, None)
            problem = f"the connection to {_host_of(arguments['url'])} broke: {_summary(error)}"
            raise PhotaConnectionError(problem, before_send=False, **where) from None
        request_id = headers.get(REQUEST_ID_HEADER)
        log_call(self.log, logging.DEBUG, request, status, started, request_id)
        return interpret(request, status, headers, content)


def _connector_problem(error: aiohttp.ClientConnectorError, host: str) -> str:
    """The provider's description of an aiohttp connector error, in the sync client's words."""

    cause = error.os_error  # for a certificate error, the ssl.SSLCertVerificationError itself
    if isinstance(cause, ssl.SSLError):
        return _tls_problem(cause, host)
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused by {host}"
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve the host of {host}"
    return f"cannot connect to {host}: {cause.strerror or _summary(cause)}"


def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """A verifying TLS context that trusts the CAs of ``ca_bundle`` (a PEM file or a folder of them)."""

    if os.path.isdir(ca_bundle):
        return ssl.create_default_context(capath=ca_bundle)
    return ssl.create_default_context(cafile=ca_bundle)
