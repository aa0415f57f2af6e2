"""Sending :class:`~airflow_provider_phota.contract.ApiRequest` objects over HTTP, sync (requests) and async (aiohttp).

Both clients share everything but the socket work: the connection settings, the response interpretation (status
-> typed error, JSON decoding, request id), the call log line and the retry policy. The API key is added to the
``X-API-Key`` header of API requests only: never to signed download URLs, never to a log line or an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_phota.contract import (
    API_KEY_HEADER,
    API_PREFIX,
    DEFAULT_BASE_URL,
    REQUEST_ID_HEADER,
    SERVER_TIME_CAP_SECONDS,
    ApiRequest,
    MalformedResponse,
    parse_retry_after,
)
from airflow_provider_phota.exceptions import (
    PhotaConnectionError,
    PhotaError,
    PhotaMalformedResponseError,
    PhotaTimeoutError,
    api_error,
    is_retryable,
)
from airflow_provider_phota.hooks.retry import Log, RetryPolicy

if TYPE_CHECKING:
    import aiohttp
    import requests


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
class ConnectionSettings:
    """What a client needs from an Airflow connection; built once per hook, sync or async."""

    base_url: str
    api_key: str = field(repr=False)
    # Synchronous calls may legitimately run up to the service's 600 s cap; wait a little longer than that.
    timeout: float = SERVER_TIME_CAP_SECONDS + 60.0
    connect_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        port: int | None,
        password: str | None,
        extras: Mapping[str, Any],
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> ConnectionSettings:
        if not password:
            raise PhotaError("The Phota connection has no API key: set it as the connection's password.")
        return cls(
            base_url=base_url_from(host, port),
            api_key=password,
            timeout=float(timeout or extras.get("timeout") or cls.timeout),
            connect_timeout=float(extras.get("connect_timeout") or cls.connect_timeout),
            retry=RetryPolicy.from_extras(extras, retry),
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
        if request.raw_json:
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
        raise PhotaMalformedResponseError(f"expected an image, got {content_type or 'no Content-Type'}",
                                          method=request.method, path=request.path, request_id=request_id)  # fmt: skip


def parsed(request: ApiRequest, response: ApiResponse, parse: Callable[[ApiResponse], T]) -> T:
    """Apply a contract parser; a 2xx body of the wrong shape becomes a (retryable) malformed-response error."""
    try:
        return parse(response)
    except MalformedResponse as error:
        raise PhotaMalformedResponseError(str(error), method=request.method, path=request.path,
                                          request_id=response.request_id) from None  # fmt: skip


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
        log.log(level, "Phota %s %s -> %s in %.0f ms (request id %s)", request.method, request.path, status,
                elapsed_ms, request_id or "-")  # fmt: skip


# --- sync -------------------------------------------------------------------------------------------------------


class SyncClient:
    """requests-based client: one ``Session`` (keep-alive) per hook."""

    def __init__(self, settings: ConnectionSettings, log: Log) -> None:
        import requests

        self.settings = settings
        self.log = log
        self.session = requests.Session()
        # requests re-reads the whole environment (proxies, CA bundle) on every call when trust_env is on; that
        # costs more than a loopback round trip. Read it once for the API origin and keep the answer.
        environment = self.session.merge_environment_settings(settings.base_url, {}, None, None, None)
        self.session.proxies.update(environment["proxies"])
        self.session.verify = environment["verify"]
        self.session.trust_env = False
        self._timeout = (settings.connect_timeout, settings.timeout)

    @staticmethod
    def _download_settings(url: str) -> dict[str, Any]:
        """Proxy and CA settings for a download host (often not the API's: a CDN), read from the environment."""
        import requests

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
        return self.settings.retry.call(lambda: parsed(request, self.send_once(request), parse), self.log, retry_if)

    def send_once(self, request: ApiRequest) -> ApiResponse:
        started = time.monotonic()
        with self._translate_errors(request, started):
            response = self.session.request(
                **self.settings.http_arguments(request), timeout=self._timeout, stream=request.raw_json
            )
            content = _read_whole_body(response) if request.raw_json else response.content
        request_id = response.headers.get(REQUEST_ID_HEADER)
        log_call(self.log, logging.INFO, request, response.status_code, started, request_id)
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
            with self._translate_errors(request, started):
                response = self.session.get(url, stream=True, timeout=self._timeout, **self._download_settings(url))
                with response:
                    if response.status_code >= 400:
                        interpret(request, response.status_code, response.headers, response.content)
                    log_call(self.log, logging.INFO, request, response.status_code, started, None)
                    _require_image(request, response.headers, None)
                    return consume(response.iter_content(chunk_size=DOWNLOAD_CHUNK_BYTES))

        return self.settings.retry.call(attempt, self.log)

    @contextmanager
    def _translate_errors(self, request: ApiRequest, started: float) -> Iterator[None]:
        import requests

        try:
            yield
        except requests.exceptions.ConnectTimeout as error:
            log_call(self.log, logging.WARNING, request, "connect timeout", started, None)
            raise PhotaConnectionError(f"connect timeout: {error}", before_send=True, method=request.method,
                                       path=request.path) from None  # fmt: skip
        except requests.exceptions.Timeout:
            log_call(self.log, logging.WARNING, request, "timeout", started, None)
            raise PhotaTimeoutError(f"no answer within {self.settings.timeout:.0f} s", method=request.method,
                                    path=request.path) from None  # fmt: skip
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            before_send = _never_connected(error)
            log_call(self.log, logging.WARNING, request, "connection error", started, None)
            raise PhotaConnectionError(_describe(error), before_send=before_send, method=request.method,
                                       path=request.path) from None  # fmt: skip


def _read_whole_body(response: requests.Response) -> bytes | bytearray:
    """The body read into one buffer sized from Content-Length: a large image response then exists once in
    memory, not as chunks plus their join. Encoded or unsized bodies take requests' ordinary path."""
    length = response.headers.get("Content-Length", "")
    if not length.isdigit() or response.headers.get("Content-Encoding", "identity") != "identity":
        return response.content
    buffer = bytearray(int(length))
    view = memoryview(buffer)
    try:
        filled = 0
        while filled < len(buffer):
            # bounded slices: urllib3's readinto reads a temporary bytes object as large as the target
            count = response.raw.readinto(view[filled : filled + DOWNLOAD_CHUNK_BYTES])
            if not count:
                import requests

                raise requests.exceptions.ChunkedEncodingError(f"body ended after {filled} of {len(buffer)} bytes")
            filled += count
    finally:
        view.release()
    response.raw.release_conn()  # fully read: the connection goes back to the pool
    return buffer


def _never_connected(error: BaseException) -> bool:
    """True when requests failed while opening the connection (refused, DNS), before any byte was sent."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    seen: set[int] = set()
    stack: list[Any] = [error]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | NameResolutionError):
            return True
        stack += [getattr(item, "reason", None), item.__cause__, item.__context__]
        stack += [arg for arg in getattr(item, "args", ()) if isinstance(arg, BaseException)]
    return False


def _describe(error: BaseException) -> str:
    # requests' messages embed the URL, never headers; keep only the first line, no stack of reprs.
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__


# --- async ------------------------------------------------------------------------------------------------------


class _SharedSessions:
    """One aiohttp session per event loop, shared by every hook (and trigger) running in that loop.

    A triggerer holding a thousand waits then keeps one connection pool instead of a thousand. The API key
    travels per request, so hooks of different connections can share the pool. A session closes when the last
    hook that uses it calls ``aclose()``.
    """

    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, int]] = {}

    def acquire(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        session, users = self._sessions.get(loop, (None, 0))
        if session is None or session.closed:
            # Timeouts are set per request (from each connection's settings); the pool itself has none.
            session, users = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)), 0
        self._sessions[loop] = (session, users + 1)
        return session

    async def release(self, session: aiohttp.ClientSession) -> None:
        for loop, (current, users) in list(self._sessions.items()):
            if current is session:
                if users <= 1:
                    del self._sessions[loop]
                    await session.close()
                else:
                    self._sessions[loop] = (current, users - 1)
                return

    def users(self) -> int:
        loop = asyncio.get_running_loop()
        return self._sessions.get(loop, (None, 0))[1]


shared_sessions = _SharedSessions()


class AsyncClient:
    """aiohttp-based client with the same contract, interpretation and retry policy as :class:`SyncClient`.

    It serves the triggers and so only waits: requests marked ``creates_charge`` are refused.
    """

    def __init__(self, settings: ConnectionSettings, log: Log) -> None:
        import aiohttp

        self.settings = settings
        self.log = log
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout,
                                              sock_read=settings.timeout)  # fmt: skip

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = shared_sessions.acquire()
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await shared_sessions.release(session)

    async def send(
        self,
        request: ApiRequest,
        parse: Callable[[ApiResponse], T] = _as_is,  # type: ignore[assignment]
        retry_if: Callable[[BaseException], bool] = is_retryable,
    ) -> T:
        async def attempt() -> T:
            return parsed(request, await self.send_once(request), parse)

        return await self.settings.retry.acall(attempt, self.log, retry_if)

    async def send_once(self, request: ApiRequest) -> ApiResponse:
        import aiohttp

        if request.creates_charge:
            # The async client serves the triggers, which only wait: a trigger can run twice (HA triggerers,
            # restarts), so it must never send anything that creates or charges.
            raise PhotaError(f"{request.method} {request.path} creates paid work; the async client only waits")
        started = time.monotonic()
        try:
            async with self.session.request(**self.settings.http_arguments(request), timeout=self._timeout) as response:
                content = await response.read()
                status, headers = response.status, response.headers
        except aiohttp.ClientConnectorError as error:
            log_call(self.log, logging.WARNING, request, "connection refused", started, None)
            raise PhotaConnectionError(
                _describe(error), before_send=True, method=request.method, path=request.path
            ) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            log_call(self.log, logging.WARNING, request, "timeout", started, None)
            raise PhotaTimeoutError(
                f"no answer within {self.settings.timeout:.0f} s", method=request.method, path=request.path
            ) from None
        except aiohttp.ClientError as error:
            log_call(self.log, logging.WARNING, request, "connection error", started, None)
            raise PhotaConnectionError(_describe(error), method=request.method, path=request.path) from None
        request_id = headers.get(REQUEST_ID_HEADER)
        log_call(self.log, logging.DEBUG, request, status, started, request_id)
        return interpret(request, status, headers, content)
