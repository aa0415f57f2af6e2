"""The emulator's aiohttp application: one pipeline for every API route (auth, faults, parsing, recording), the
profile and studio routes, async jobs and their callbacks, the signed-URL CDN and the admin API."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from airflow_provider_phota import contract, pricing
from airflow_provider_phota.contract import Endpoint, ErrorType, JobStatus, ProfileStatus
from airflow_provider_phota.testing import images
from airflow_provider_phota.testing.emulator.admin import AdminApi
from airflow_provider_phota.testing.emulator.media import Media, is_loopback_url
from airflow_provider_phota.testing.emulator.records import CallbackDelivery, Charge, Download, Fault, RecordedRequest
from airflow_provider_phota.testing.emulator.state import (
    CDN_PREFIX,
    EMULATOR_PRICES,
    FAULT_TYPES,
    MARKER_FAIL_JOB,
    MARKER_MODERATE,
    ApiError,
    EmulatorState,
    RequestInvalid,
    _Job,
    _Profile,
    decode_json_object,
    new_id,
    raise_violations,
)

DEPRECATION_HEADER = "X-Phota-Deprecation-Date"
DEPRECATION_DATE = "2026-05-08"  # [RN-0.2.0]: the announced output_format default change
TICK_SECONDS = 0.05  # how often the background ticker settles due jobs (so callbacks fire without polling)


class _DropConnection(Exception):
    """Close the TCP connection without answering (fault ``drop``)."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BODY = web.RequestKey("phota_body", object)
REQUEST_ID = web.RequestKey("phota_request_id", str)


def _error_response(error: Exception, request_id: str) -> web.Response:
    if isinstance(error, RequestInvalid):
        return web.json_response({"detail": error.items}, status=422)
    assert isinstance(error, ApiError)
    body: dict[str, Any] = {"detail": error.detail}
    if error.error_type is not None:  # api-decisions D10: the missing-key 403 carries only detail
        body |= {"type": error.error_type, "request_id": request_id}
    return web.json_response(body, status=error.status, headers=error.headers)


class EmulatorApp:
    """The aiohttp application: one pipeline for every API route, the signed-URL CDN, and the admin API."""

    def __init__(self, state: EmulatorState, *, deliver_callbacks_over_http: bool) -> None:
        self.state = state
        self.deliver_callbacks_over_http = deliver_callbacks_over_http
        self.media = Media(state)
        self.ticker: asyncio.Task[None] | None = None
        self.background: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        return self.media.base_url

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self.pipeline], client_max_size=256 * 1024**2)
        api = contract.API_PREFIX
        app.router.add_post(f"{api}/profiles/add", self.create_profile)
        app.router.add_get(f"{api}/profiles/ids", self.list_profiles)
        app.router.add_get(f"{api}/profiles/{{profile_id}}/status", self.profile_status)
        app.router.add_get(f"{api}/profiles/{{profile_id}}/profile_picture", self.profile_picture)
        app.router.add_delete(f"{api}/profiles/{{profile_id}}", self.delete_profile)
        for endpoint in Endpoint:
            app.router.add_post(f"{api}/{endpoint.value}", self.studio)
        app.router.add_get(f"{api}/jobs/{{job_id}}", self.get_job)
        app.router.add_get(f"{api}/webhook-secret", self.webhook_secret)
        app.router.add_get(f"{CDN_PREFIX}/{{day}}/{{name}}", self.download)
        AdminApi(self.state, self.media).add_routes(app.router)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        await self.media.open()
        self.ticker = asyncio.create_task(self._tick_forever())

    async def _on_cleanup(self, app: web.Application) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
        for task in list(self.background):
            task.cancel()
        await self.media.close()

    # -- pipeline -------------------------------------------------------------------------------------------------

    @web.middleware
    async def pipeline(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every request: request id and the api-decisions D17 headers; API routes also get auth, faults, parsing and
        recording."""
        request_id = new_id("req")
        request[REQUEST_ID] = request_id
        if request.path.startswith(contract.API_PREFIX + "/") or request.path == contract.API_PREFIX:
            response = await self._api_pipeline(request, handler, request_id)
        else:  # the signed-URL CDN and the admin API: no key, not recorded as API requests
            response = await self._plain_pipeline(request, handler, request_id)
        response.headers[contract.REQUEST_ID_HEADER] = request_id
        response.headers[DEPRECATION_HEADER] = DEPRECATION_DATE
        return response

    async def _plain_pipeline(self, request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ApiError, RequestInvalid) as error:
            return _error_response(error, request_id)
        except web.HTTPException as error:
            kind = ErrorType.NOT_FOUND if error.status == 404 else ErrorType.INVALID_REQUEST
            return _error_response(ApiError(error.status, error.reason, kind), request_id)

    async def _api_pipeline(self, request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
        """auth -> faults -> parse -> validate/handle (in the handler) -> faults applied after -> record."""
        raw = await request.read()
        status = 0
        try:
            fault: Fault | None = None
            response: web.StreamResponse
            try:
                self._check_route(request)
                self._authenticate(request)
                fault = self.state.take_fault(request.method, request.path)
                if fault is not None and fault.delay:
                    await asyncio.sleep(fault.delay)
                answers = fault is not None and bool(fault.status or fault.drop or fault.malformed)
                if fault is not None and answers and not fault.after:
                    response = self._fault_response(fault, request_id)
                else:
                    try:
                        request[BODY] = decode_json_object(raw) if request.method == "POST" else None
                        response = await handler(request)
                    except (ApiError, RequestInvalid) as error:
                        response = _error_response(error, request_id)
                    if fault is not None and answers:  # after=True: the work is done, the answer is lost
                        self._refund_on_timeout(fault, request_id)
                        response = self._fault_response(fault, request_id)
            except (ApiError, RequestInvalid) as error:
                response = _error_response(error, request_id)
            status = response.status
            return response
        except _DropConnection:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)  # never reaches the client: the socket is already closed
        finally:
            self.state.record(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    json=self._loads_or_none(raw),
                    status=status,
                    request_id=request_id,
                    headers=dict(request.headers),
                    time=self.state.now(),
                )
            )

    @staticmethod
    def _check_route(request: web.Request) -> None:
        """Unknown routes are 404 before auth, as FastAPI answers them; a wrong method is 405."""
        problem = request.match_info.http_exception
        if isinstance(problem, web.HTTPMethodNotAllowed):
            raise ApiError(405, f"Method {request.method} not allowed", ErrorType.INVALID_REQUEST)
        if problem is not None:
            raise ApiError(404, f"Not found: {request.path}", ErrorType.NOT_FOUND)

    def _authenticate(self, request: web.Request) -> None:
        """api-decisions D10: missing key 403 (bare detail), wrong key 401."""
        key = request.headers.get(contract.API_KEY_HEADER)
        if not key:
            raise ApiError(403, "Not authenticated", None)
        if not hmac.compare_digest(key.encode(), self.state.api_key.encode()):
            raise ApiError(401, "Invalid API key", ErrorType.UNAUTHORIZED)

    @staticmethod
    def _fault_response(fault: Fault, request_id: str) -> web.Response:
        if fault.drop:
            raise _DropConnection
        if fault.malformed and not fault.status:
            return web.Response(status=200, text='{"this is": not json', content_type="application/json")
        status = cast(int, fault.status)
        if status == 422:
            return _error_response(
                RequestInvalid([{"loc": ["body"], "msg": "injected validation fault", "type": "value_error"}]),
                request_id,
            )
        headers = {}
        if status == 429:
            headers["Retry-After"] = str(round(fault.retry_after if fault.retry_after is not None else 1))
        elif fault.retry_after is not None:
            headers["Retry-After"] = str(round(fault.retry_after))
        detail = f"Injected fault: HTTP {status}"
        return _error_response(ApiError(status, detail, FAULT_TYPES[status], headers=headers), request_id)

    def _refund_on_timeout(self, fault: Fault, request_id: str) -> None:
        """[RN-0.7]: a synchronous call cut at the time limit (504) is refunded; only its own charges are."""
        if fault.status == 504:
            self.state.refund(request_id)

    @staticmethod
    def _loads_or_none(raw: bytes) -> Any:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    # -- profiles -------------------------------------------------------------------------------------------------

    async def create_profile(self, request: web.Request) -> web.Response:
        body = cast(dict[str, Any], request[BODY])
        raise_violations(contract.validate_create_profile(body))
        urls = [str(url) for url in body["image_urls"]]
        await self.media.check_training_images(urls)
        tier = body.get("training_tier") or "standard"
        profile_id = new_id("prof")[:21]
        price = pricing.training_cost(tier, EMULATOR_PRICES).usd
        assert price is not None  # every tier has a list price
        self.state.charge(Charge("profile", "/profiles/add", 1, float(price), profile_id))
        profile = _Profile(profile_id, body.get("tag"), tier, urls, self.state.now())
        with self.state.lock:
            self.state.profiles[profile_id] = profile
        return web.json_response({"profile_id": profile_id})

    async def list_profiles(self, request: web.Request) -> web.Response:
        tag = request.query.get("tag")
        problems = contract.validate_tag(tag)
        if problems:
            items = [{"loc": ["query", "tag"], "msg": v.describe(), "type": "value_error"} for v in problems]
            raise RequestInvalid(items)
        with self.state.lock:
            ids = [p.profile_id for p in self.state.profiles.values() if tag is None or p.tag == tag]
        return web.json_response({"profiles": ids})

    async def profile_status(self, request: web.Request) -> web.Response:
        profile = self.state.profile(request.match_info["profile_id"])
        status, message = self.state.profile_state(profile)
        return web.json_response({"profile_id": profile.profile_id, "status": status.value, "message": message})

    async def profile_picture(self, request: web.Request) -> web.Response:
        """api-decisions D16: JPEG once READY, 404 before."""
        profile = self.state.profile(request.match_info["profile_id"])
        status, _ = self.state.profile_state(profile)
        if status is not ProfileStatus.READY:
            raise ApiError(404, f"Profile {profile.profile_id!r} has no picture yet ({status.value})", "NOT_FOUND")
        if profile.picture is None:
            profile.picture = await self.media.in_executor(images.render_profile_picture, profile.profile_id)
        return web.Response(body=profile.picture, content_type="image/jpeg")

    async def delete_profile(self, request: web.Request) -> web.Response:
        profile = self.state.profile(request.match_info["profile_id"])
        with self.state.lock:
            self.state.profiles.pop(profile.profile_id, None)
        return web.json_response({"profile_id": profile.profile_id, "status": "ok"})

    # -- studio endpoints -----------------------------------------------------------------------------------------

    async def studio(self, request: web.Request) -> web.Response:
        """``/edit``, ``/generate``, ``/enhance``, ``/remix``: validate, then answer sync (200) or async (202)."""
        endpoint = Endpoint(request.path.rsplit("/", 1)[-1])
        body = cast(dict[str, Any], request[BODY])
        raise_violations(contract.validate_image_request(endpoint, body))
        is_async = body.get("async") is True
        if is_async:
            known = self.state.remembered_job(endpoint, body.get("client_request_id"))
            if known is not None:
                return self._job_handle(known)
        subjects = self._known_subjects(endpoint, body)
        input_size = await self.media.check_input_images(endpoint, body)
        prompt = str(body.get("prompt") or "")
        if not is_async and MARKER_MODERATE in prompt:
            raise ApiError(400, "The prompt was blocked by content moderation", ErrorType.CONTENT_MODERATION)
        ref = new_id("job") if is_async else request[REQUEST_ID]
        charge = self._price(endpoint, body, subjects, ref)
        self.state.charge(charge)
        if is_async:
            return self._submit_job(endpoint, body, subjects, ref, input_size)
        try:
            result = await self.media.render_outputs(
                endpoint, body, subjects, seed=request[REQUEST_ID], input_size=input_size
            )
        except BaseException:
            self.state.refund(ref)
            raise
        return web.json_response(result)

    def _known_subjects(self, endpoint: Endpoint, body: Mapping[str, Any]) -> dict[str, int]:
        """Every referenced profile ([[id]] in the prompt, ``profile_ids``) must exist and be READY ([QS], [R-EDIT]);
        each appears in every output (``known_subjects``, [R-EDIT], [RN-0.3])."""
        profile_ids = body.get("profile_ids") if endpoint is not Endpoint.GENERATE else None
        count = int(body.get("num_output_images") or 1)
        subjects: dict[str, int] = {}
        for profile_id in contract.referenced_profiles(body.get("prompt"), profile_ids):
            with self.state.lock:
                profile = self.state.profiles.get(profile_id)
            if profile is None:
                raise ApiError(400, f"profile {profile_id!r} does not exist", ErrorType.INVALID_REQUEST)
            status, _ = self.state.profile_state(profile)
            if status is not ProfileStatus.READY:
                raise ApiError(
                    400, f"profile {profile_id!r} is not READY (status {status.value})", ErrorType.INVALID_REQUEST
                )
            subjects[profile_id] = count
        return subjects

    @staticmethod
    def _price(endpoint: Endpoint, body: Mapping[str, Any], subjects: Mapping[str, int], ref: str) -> Charge:
        count = int(body.get("num_output_images") or 1)
        cost = pricing.cost_of(endpoint, body, EMULATOR_PRICES, count=count, known_subjects=subjects)
        assert cost.usd is not None  # the emulator's table prices every request
        return Charge("images", f"/{endpoint.value}", count, float(cost.usd), ref, cost.with_identity)

    # -- async jobs -----------------------------------------------------------------------------------------------

    def _submit_job(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        subjects: dict[str, int],
        job_id: str,
        input_size: tuple[int, int] | None,
    ) -> web.Response:
        client_request_id = body.get("client_request_id")
        job = _Job(
            job_id=job_id,
            endpoint=endpoint,
            body=dict(body),
            client_request_id=client_request_id,
            callback_url=body.get("callback_url"),
            created=self.state.now(),
            created_wall=self.state.wall(),
            known_subjects=subjects,
            input_size=input_size,
        )
        self.state.add_job(job)
        return self._job_handle(job)

    @staticmethod
    def _job_handle(job: _Job) -> web.Response:
        """api-decisions D1 (also for an idempotent repeat, D4)."""
        poll_url = contract.job_request(job.job_id).path
        return web.json_response(
            {"job_id": job.job_id, "status": JobStatus.QUEUED.value, "poll_url": poll_url}, status=202
        )

    async def settle(self, job: _Job) -> None:
        """Finish a due job exactly once, however many pollers and the ticker ask at the same time."""
        if not self.state.job_is_due(job):
            return
        async with job.lock:
            if not self.state.job_is_due(job):
                return
            prompt = str(job.body.get("prompt") or "")
            if MARKER_MODERATE in prompt or MARKER_FAIL_JOB in prompt or job.forced_failure:
                if MARKER_MODERATE in prompt:
                    error_type, message = ErrorType.CONTENT_MODERATION, "The prompt was blocked by content moderation"
                elif job.forced_failure:
                    error_type, message = ErrorType.JOB_FAILED, "The job failed (emulator: fail_next_jobs)"
                else:
                    error_type, message = ErrorType.JOB_FAILED, f"The job failed (emulator marker {MARKER_FAIL_JOB!r})"
                job.error = {"type": error_type, "message": message}
                self.state.refund(job.job_id, "images")
                job.status = JobStatus.FAILED
            else:
                job.result = await self.media.render_outputs(
                    job.endpoint, job.body, job.known_subjects, seed=job.job_id, input_size=job.input_size
                )
                job.status = JobStatus.SUCCEEDED
            job.finished_wall = self.state.wall()
        if job.callback_url:
            self._spawn(self._deliver_callback(job))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            with self.state.lock:
                due = [job for job in self.state.jobs.values() if self.state.job_is_due(job)]
            for job in due:
                self._spawn(self.settle(job))

    async def _deliver_callback(self, job: _Job) -> None:
        """api-decisions D6: POST the D2 body, signed with the webhook secret. Only loopback receivers are called."""
        url = cast(str, job.callback_url)
        raw = json.dumps(self.state.job_body(job)).encode()
        signature = contract.sign_callback(self.state.webhook_secret, raw)
        headers = {"Content-Type": "application/json", contract.SIGNATURE_HEADER: signature}
        status: int | None = None
        error: str | None = None
        if not is_loopback_url(url):
            error = "not delivered: the emulator only calls loopback receivers"
        else:
            target = url
            if self.deliver_callbacks_over_http:
                target = urlunsplit(urlsplit(url)._replace(scheme="http"))
            assert self.media.session is not None
            try:
                async with self.media.session.post(target, data=raw, headers=headers) as response:
                    status = response.status
            except Exception as problem:
                error = f"{type(problem).__name__}: {problem}"
        with self.state.lock:
            self.state.callbacks.append(CallbackDelivery(job.job_id, url, headers, raw, status, error))

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.state.job(request.match_info["job_id"])
        await self.settle(job)
        return web.json_response(self.state.job_body(job))

    async def webhook_secret(self, request: web.Request) -> web.Response:
        return web.json_response({"secret": self.state.webhook_secret})

    # -- signed downloads -----------------------------------------------------------------------------------------

    async def download(self, request: web.Request) -> web.StreamResponse:
        """A signed download. Faults apply here too: a status, a delay, ``drop`` (closed before any byte) and
        ``drop`` with ``after=True`` (half the body is sent, then the connection is cut mid-transfer)."""
        name = request.match_info["name"]
        status, size = 500, 0
        try:
            stored = self.state.open_file(name, request.query.get("token", ""), request.query.get("expires", ""))
            fault = self.state.take_fault(request.method, request.path)
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status or fault.malformed:
                    response = self._fault_response(fault, request[REQUEST_ID])
                    status = response.status
                    return response
                if fault.drop:
                    status = 0
                    return await self._cut_download(request, stored.data if fault.after else b"")
            status, size = 200, len(stored.data)
            return web.Response(body=stored.data, content_type=stored.content_type)
        except ApiError as error:
            status = error.status
            raise
        finally:
            with self.state.lock:
                self.state.downloads.append(Download(request.path, status, size, self.state.now()))

    @staticmethod
    async def _cut_download(request: web.Request, data: bytes) -> web.StreamResponse:
        """Announce the whole body, send half of it, and close the connection: a transfer that dies midway."""
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        if data:
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
        if request.transport is not None:
            request.transport.abort()
        return response
