"""An event trigger for Airflow 3's ``AssetWatcher``: DAGs scheduled on "a profile finished training".

:class:`PhotaProfileReadyEventTrigger` watches the profiles of one tag (or of the whole account) and sends one
event per profile that becomes READY; Airflow turns each event into an event of the watched asset, with the event's
payload in ``extra["payload"]`` (``profile_id``, ``tag``, ``status``). It follows the rules of the other triggers
(:mod:`airflow_provider_phota.triggers.phota`): fully async through the hook's aiohttp client and ``aget_connection``,
GET only (two HA triggerers running it cost nothing), at most ``max_concurrency`` status GETs in flight, and each
profile asked at most once per ``poll_interval``; a profile that is terminal (READY, ERROR, INACTIVE) is never asked
again.

**Once per profile.** The trigger remembers the terminal profiles it has seen (its watermark: their ids, pruned to
the profiles that still exist). The first time a watcher looks, the profiles that are already terminal are its
baseline and send nothing (deploying a welcome-pack DAG does not welcome last year's customers), unless
``include_existing`` is set.

* Airflow 3.3+: the watermark lives in the watched asset's state store (AIP-103), written after each event, so a
  triggerer restart (or another triggerer taking over) continues where the last one stopped: profiles that became
  READY while no triggerer ran fire then, and none fires twice (except one whose event was sent in the instant
  before a crash, before its watermark write).
* Airflow 3.0-3.2 (no asset state store): the watermark lives in memory. A restarted trigger takes a new baseline,
  so it fires for no profile twice, but misses the profiles that became READY while it was not running
  (``include_existing=True`` turns this around: nothing missed, and every READY profile fires again after a
  restart).

The Phota API filters profiles by exact tag only and returns neither tags nor times, so a tag prefix cannot be
watched; use one tag per audience (or ``tag=None`` for the whole account).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from airflow_provider_phota import contract
from airflow_provider_phota._compat import AirflowNotFoundException, TriggerEvent
from airflow_provider_phota.exceptions import PhotaError, PhotaNotFoundError, raise_if_invalid

try:
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # Airflow 2.x has no event-driven scheduling; the module still imports there
    from airflow.triggers.base import BaseTrigger as BaseEventTrigger  # type: ignore[assignment]

DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_MAX_CONCURRENCY = 8
WATERMARK_KEY = "phota_terminal_profiles"


class PhotaProfileReadyEventTrigger(BaseEventTrigger):
    """Send one event per Phota profile (of ``tag``) that becomes READY; for ``AssetWatcher`` (Airflow 3).

    :param tag: watch the profiles created with this tag; ``None`` watches every profile of the account.
    :param phota_conn_id: the Airflow connection (its id only; the key is looked up on the triggerer).
    :param poll_interval: seconds between two looks (one list GET, then one status GET per training profile).
    :param max_concurrency: at most this many status GETs in flight at once.
    :param include_existing: also fire for the profiles already terminal the first time the watcher looks.
    """

    def __init__(
        self,
        *,
        tag: str | None = None,
        phota_conn_id: str = "phota_default",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        include_existing: bool = False,
    ) -> None:

        problems = contract.validate_tag(tag)
        if not float(poll_interval) > 0:
            problems.append(contract.Violation("poll_interval", f"{poll_interval!r} is not positive", "seconds > 0"))
        if int(max_concurrency) < 1:
            problems.append(contract.Violation("max_concurrency", f"{max_concurrency!r} is below 1", "an int >= 1"))
        raise_if_invalid(problems, type(self).__name__)
        super().__init__()  # type: ignore[no-untyped-call]
        self.tag = tag
        self.phota_conn_id = phota_conn_id
        self.poll_interval = float(poll_interval)
        self.max_concurrency = int(max_concurrency)
        self.include_existing = bool(include_existing)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The connection id, never the key: trigger kwargs are stored in the metadata database.
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "tag": self.tag,
                "phota_conn_id": self.phota_conn_id,
                "poll_interval": self.poll_interval,
                "max_concurrency": self.max_concurrency,
                "include_existing": self.include_existing,
            },
        )

    @property
    def _store_key(self) -> str:
        """One watermark per tag and connection, so watchers of one asset with different tags do not mix."""
        return f"{WATERMARK_KEY}:{self.phota_conn_id}:{self.tag if self.tag is not None else '*'}"

    def _store(self) -> Any:
        """The watched asset's state store on Airflow 3.3+ (set by the triggerer before ``run``), else ``None``."""
        return getattr(self, "asset_state_store", None)

    async def _load_watermark(self) -> set[str] | None:
        store = self._store()
        if store is None:
            return None
        try:
            stored = await store.aget(self._store_key)
        except ValueError as error:  # one trigger shared by several assets: which one's store is ambiguous
            self.log.warning("Phota profile watcher: watermark kept in memory only: %s", error)
            self.asset_state_store = None
            return None
        return {str(profile_id) for profile_id in stored} if isinstance(stored, list) else None

    async def _save_watermark(self, done: Iterable[str]) -> None:
        store = self._store()
        if store is None:
            return
        await store.aset(self._store_key, sorted(done))

    async def _statuses(self, hook: Any, profile_ids: list[str]) -> dict[str, Any]:
        """The states of ``profile_ids``, at most ``max_concurrency`` GETs at once; a profile deleted meanwhile
        (404) or a transient error leaves it out of this round."""

        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(profile_id: str) -> Any:
            async with gate:
                try:
                    return await hook.aget_profile_status(profile_id)
                except PhotaNotFoundError:
                    return None
                except PhotaError as error:
                    self.log.warning("Phota profile %s: status unknown this round: %s", profile_id, error)
                    return None

        answers = await asyncio.gather(*(one(profile_id) for profile_id in profile_ids))
        return {profile_id: state for profile_id, state in zip(profile_ids, answers, strict=True) if state is not None}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_phota.hooks.phota import PhotaHook

        hook = PhotaHook(self.phota_conn_id)
        done: set[str] | None = None  # terminal profiles seen: the watermark
        baseline = False
        try:
            while True:
                try:
                    listed = await hook.alist_profile_ids(self.tag)
                    if done is None:
                        done = await self._load_watermark()
                        baseline = done is None and not self.include_existing
                        done = done or set()
                    states = await self._statuses(hook, [p for p in listed if p not in done])
                except (PhotaError, AirflowNotFoundException) as error:
                    # An event trigger has no deadline to report to: it says why and looks again next interval.
                    self.log.warning("Phota profile watcher (tag %r): cannot list profiles: %s", self.tag, error)
                else:
                    changed = not done.issubset(listed)
                    done &= set(listed)  # forget deleted profiles: the watermark stays as big as the account
                    for profile_id, state in states.items():
                        if state.is_training:
                            continue
                        done.add(profile_id)
                        changed = True
                        if state.is_ready and not baseline:
                            self.log.info("Phota profile %s (tag %r) is READY", profile_id, self.tag)
                            yield TriggerEvent({"profile_id": profile_id, "tag": self.tag, "status": state.status})  # type: ignore[no-untyped-call]
                            await self._save_watermark(done)
                            changed = False
                    if changed:
                        await self._save_watermark(done)
                    baseline = False
                await asyncio.sleep(self.poll_interval)
        finally:
            await hook.aclose()
