"""ProfileReadySensor: wait for a profile's training, deferrable or in reschedule/poke mode.

Training takes about 20 minutes, so the sensor never holds a worker slot for it by default: with
``deferrable=True`` the :class:`~airflow_provider_phota.triggers.phota.ProfileReadyTrigger` polls on the
triggerer; without it the sensor uses ``mode="reschedule"`` unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_phota._compat import BaseSensorOperator, Context, PokeReturnValue
from airflow_provider_phota.engine.common import (
    DEFAULT_CONN_ID,
    PhotaHookMixin,
    fail_fast_on_permanent_errors,
    profile_id_violations,
)
from airflow_provider_phota.exceptions import raise_if_invalid
from airflow_provider_phota.lineage import LineageRecord, run_facts
from airflow_provider_phota.waiting import check_profile, defer_until_ready, profile_from_event, profile_result

if TYPE_CHECKING:
    from airflow_provider_phota.results import ProfileStatusResult

DEFAULT_WAIT_TIMEOUT_SECONDS = 2 * 3600.0  # training usually takes about 20 minutes


class ProfileReadySensor(PhotaHookMixin, BaseSensorOperator):
    """Wait until a Phota profile's training is READY; returns a
    :class:`~airflow_provider_phota.results.ProfileStatusResult` (each key also an XCom of its own, as for
    ``PhotaCreateProfileOperator``: ``ready.output["profile_id"]``).

    ERROR or INACTIVE fails the task without retries, with the API's message, and so does an error no retry can fix
    (an unknown profile, a wrong key), whether it is seen before deferring or by the trigger. A timeout raises
    ``AirflowSensorTimeout``. ``soft_fail`` and ``never_fail`` skip instead, as for any Airflow sensor: the first
    check runs in ``BaseSensorOperator.execute`` and the resume in its ``resume_execution``.

    :param profile_id: the profile to wait for (templated; typically ``create.output["profile_id"]``).
    :param phota_conn_id: the Phota connection (default ``phota_default``; templated).
    :param deferrable: wait on the triggerer, freeing the worker slot. Defaults to ``[operators]
        default_deferrable`` (``False`` unless the deployment turns it on). The profile is checked once before
        deferring, so a READY profile never defers. When ``False`` and ``mode`` is not given, the sensor uses
        ``mode="reschedule"``, which frees the slot between pokes.
    :param poke_interval: seconds between status checks (default 30; the service suggests 10-30 s).
    :param timeout: seconds to wait in all (default two hours).
    :param kwargs: the arguments of ``BaseSensorOperator`` (``mode``, ``soft_fail``, ``never_fail``,
        ``exponential_backoff``, ...) and ``BaseOperator``.
    """

    template_fields: Sequence[str] = ("profile_id", "phota_conn_id")
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        profile_id: str,
        phota_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30,
        timeout: float = DEFAULT_WAIT_TIMEOUT_SECONDS,
        **kwargs: Any,
    ) -> None:
        if not deferrable:
            kwargs.setdefault("mode", "reschedule")  # a 20-minute training must not hold a worker slot
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.profile_id = profile_id
        self.phota_conn_id = phota_conn_id
        self.deferrable = deferrable

    def poke(self, context: Context) -> PokeReturnValue:
        """One status check. Still training and deferrable: hand the rest of the wait to the triggerer (the
        deferral leaves through ``BaseSensorOperator.execute``, whose error handling applied to the check)."""
        with fail_fast_on_permanent_errors():
            raise_if_invalid(profile_id_violations("profile_id", self.profile_id), type(self).__name__)
        self._note_lineage()
        state = check_profile(self.hook, self.profile_id)
        if state is None and self.deferrable:
            defer_until_ready(
                self,
                profile_id=self.profile_id,
                phota_conn_id=self.phota_conn_id,
                poll_interval=float(self.poke_interval),
                timeout=float(self.timeout),
            )
        return PokeReturnValue(is_done=state is not None, xcom_value=profile_result(state) if state else None)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> ProfileStatusResult:
        """Resume from the trigger's event (see :func:`airflow_provider_phota.waiting.profile_from_event`)."""
        self._note_lineage()
        return profile_from_event(event, f"ProfileReadySensor {self.task_id}")

    def _note_lineage(self) -> None:
        """For OpenLineage: the profile the sensor waits for, as an input."""
        run = run_facts(endpoint="profiles/status", profileId=str(self.profile_id))
        self._lineage = LineageRecord(profiles_used=[str(self.profile_id)], run=run)
