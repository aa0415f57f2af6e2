"""The admin API under ``/_emulator`` (no key): the in-process handle's controls and views for an emulator running
in another process (``phota-emulator``). Every handler goes through the same :class:`EmulatorState` methods."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from airflow_provider_phota.contract import ErrorType
from airflow_provider_phota.testing.emulator.media import Media
from airflow_provider_phota.testing.emulator.records import Fault
from airflow_provider_phota.testing.emulator.state import ApiError, EmulatorState, decode_json_object

ADMIN_PREFIX = "/_emulator"


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    return decode_json_object(raw) if raw else {}


class AdminApi:
    def __init__(self, state: EmulatorState, media: Media) -> None:
        self.state = state
        self.media = media

    def add_routes(self, router: web.UrlDispatcher) -> None:
        admin = ADMIN_PREFIX
        router.add_get(f"{admin}/health", self.admin_health)
        router.add_post(f"{admin}/faults", self.admin_add_fault)
        router.add_delete(f"{admin}/faults", self.admin_clear_faults)
        router.add_get(f"{admin}/requests", self.admin_requests)
        router.add_get(f"{admin}/ledger", self.admin_ledger)
        router.add_get(f"{admin}/jobs", self.admin_jobs)
        router.add_get(f"{admin}/callbacks", self.admin_callbacks)
        router.add_post(f"{admin}/reset", self.admin_reset)
        router.add_post(f"{admin}/advance", self.admin_advance)
        router.add_post(f"{admin}/credit", self.admin_credit)
        router.add_post(f"{admin}/profiles/{{profile_id}}/outcome", self.admin_outcome)

    async def admin_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "base_url": self.media.base_url})

    async def admin_add_fault(self, request: web.Request) -> web.Response:
        spec = await _body(request)
        try:
            fault = Fault(**spec)
            self.state.add_fault(fault)
        except (TypeError, ValueError) as error:
            raise ApiError(400, str(error), ErrorType.INVALID_REQUEST) from None
        return web.json_response({"status": "ok", "fault": dataclasses.asdict(fault)})

    async def admin_clear_faults(self, request: web.Request) -> web.Response:
        self.state.clear_faults()
        return web.json_response({"status": "ok"})

    async def admin_requests(self, request: web.Request) -> web.Response:
        with self.state.lock:
            entries = [dataclasses.asdict(entry) for entry in self.state.requests]
        return web.json_response({"requests": entries})

    async def admin_ledger(self, request: web.Request) -> web.Response:
        with self.state.lock:
            entries = [dataclasses.asdict(entry) for entry in self.state.ledger]
        return web.json_response({"charges": entries, "total_usd": self.state.total_charged()})

    async def admin_jobs(self, request: web.Request) -> web.Response:
        """The ``jobs`` view of the in-process API, for an emulator in another process."""
        views = self.state.job_views()
        return web.json_response({"jobs": [{"job_id": job_id, **view._asdict()} for job_id, view in views.items()]})

    async def admin_callbacks(self, request: web.Request) -> web.Response:
        with self.state.lock:
            entries = [
                {**dataclasses.asdict(entry), "body": entry.body.decode("utf-8", "replace")}
                for entry in self.state.callbacks
            ]
        return web.json_response({"callbacks": entries})

    async def admin_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({"status": "ok"})

    async def admin_advance(self, request: web.Request) -> web.Response:
        seconds = (await _body(request)).get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ApiError(400, "seconds must be a number >= 0", ErrorType.INVALID_REQUEST)
        self.state.advance(float(seconds))
        return web.json_response({"status": "ok", "clock_offset": self.state.clock_offset})

    async def admin_credit(self, request: web.Request) -> web.Response:
        usd = (await _body(request)).get("usd")
        if usd is not None and (isinstance(usd, bool) or not isinstance(usd, int | float)):
            raise ApiError(400, "usd must be a number or null", ErrorType.INVALID_REQUEST)
        self.state.set_credit(None if usd is None else float(usd))
        return web.json_response({"status": "ok", "credit_usd": self.state.credit_usd})

    async def admin_outcome(self, request: web.Request) -> web.Response:
        spec = await _body(request)
        try:
            self.state.set_profile_outcome(
                request.match_info["profile_id"], str(spec.get("status")), str(spec.get("message") or "")
            )
        except ValueError as error:
            raise ApiError(400, str(error), ErrorType.INVALID_REQUEST) from None
        return web.json_response({"status": "ok"})
