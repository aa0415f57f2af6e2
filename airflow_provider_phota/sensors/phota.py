"""ProfileReadySensor: wait for a profile's training, in poke, reschedule or deferrable mode.

Training takes about 20 minutes, so the default is deferrable: the worker slot is released and the
:class:`~airflow_provider_phota.triggers.phota.ProfileReadyTrigger` polls on the triggerer. The profile-waiting
steps (check once, defer, interpret the event) are module functions because ``PhotaCreateProfileOperator`` with
``wait_for_ready=True`` uses them too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_phota._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseOperator,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
)
from airflow_provider_phota.events import EVENT_FAILED, EVENT_SUCCESS, EVENT_TIMEOUT
from airflow_provider_phota.operators.base import (
    DEFAULT_CONN_ID,
    PhotaHookMixin,
    fail_fast_on_permanent_errors,
    validate_event,
)

if TYPE_CHECKING:
    from airflow_provider_phota.contract import ProfileState
    from airflow_provider_phota.hooks.phota import PhotaHook

# The defer timeout is a backstop a little past the trigger's own deadline: the trigger reports the timeout
# itself (after a final re-check); Airflow's timeout only fires if the triggerer was down at the deadline.
DEFER_TIMEOUT_GRACE_SECONDS = 60.0
DEFAULT_WAIT_TIMEOUT_SECONDS = 2 * 3600.0  # training usually takes about 20 minutes


def profile_result(state: ProfileState) -> dict[str, str]:
    """The small XCom value of a finished wait."""
    return {"profile_id": state.profile_id, "status": state.status, "message": state.message}


def check_profile(hook: PhotaHook, profile_id: str) -> ProfileState | None:
    """The state if READY, ``None`` while training; a failed profile fails the task without retries."""
    with fail_fast_on_permanent_errors():
        state = hook.get_profile_status(profile_id)
    if state.is_failed:
        raise AirflowFailException(f"Phota profile {profile_id} is {state.status}: {state.message or 'no message'}")
    return state if state.is_ready else None


def defer_until_ready(
    task: BaseOperator, *, profile_id: str, phota_conn_id: str, poll_interval: float, timeout: float
) -> NoReturn:
    """Hand the wait to the triggerer. The deadline is absolute, so a triggerer restart keeps it."""
    from airflow_provider_phota.triggers.phota import ProfileReadyTrigger

    deadline = time.time() + timeout
    task.log.info("Deferring until profile %s is READY (polling every %.0f s, for at most %.0f s)", profile_id,
                  poll_interval, timeout)  # fmt: skip
    task.defer(
        trigger=ProfileReadyTrigger(profile_id, phota_conn_id, poll_interval, deadline),
        method_name="execute_complete",
        timeout=timedelta(seconds=timeout + DEFER_TIMEOUT_GRACE_SECONDS),
    )


def profile_from_event(event: Any, task: str) -> dict[str, str]:
    """Interpret a ProfileReadyTrigger event: READY returns the result; ERROR/INACTIVE fails without retries;
    a timeout raises Airflow's sensor timeout (so ``soft_fail`` applies); a trigger error fails (retryable)."""
    event = validate_event(event, task)
    profile_id = str(event.get("profile_id"))
    state = {"profile_id": profile_id, "status": str(event.get("api_status")), "message": event.get("message", "")}
    if event["status"] == EVENT_SUCCESS:
        return state
    if event["status"] == EVENT_FAILED:
        raise AirflowFailException(
            f"Phota profile {profile_id} is {state['status']}: {state['message'] or 'no message'}"
        )
    if event["status"] == EVENT_TIMEOUT:
        raise AirflowSensorTimeout(f"Timed out waiting for Phota profile {profile_id}: {event.get('message')}")
    raise AirflowException(f"Waiting for Phota profile {profile_id} failed: {event.get('message')}")


class ProfileReadySensor(PhotaHookMixin, BaseSensorOperator):
    """Wait until a Phota profile's training is READY; returns ``{"profile_id", "status", "message"}``.

    ERROR or INACTIVE fails the task without retries, with the API's message. A timeout raises
    ``AirflowSensorTimeout`` (skipped instead with ``soft_fail=True``).

    :param profile_id: the profile to wait for (templated; typically the create operator's XCom).
    :param phota_conn_id: the Phota connection.
    :param deferrable: wait on the triggerer instead of in a worker slot (the default). Set ``False`` where no
        triggerer runs, with ``mode="reschedule"`` to free the slot between pokes. The profile is checked once
        before deferring, so a READY profile never defers.
    :param poke_interval: seconds between status checks (the service suggests 10-30 s).
    :param timeout: seconds to wait in all (default two hours).
    """

    template_fields: Sequence[str] = ("profile_id",)
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        profile_id: str,
        phota_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = True,
        poke_interval: float = 30,
        timeout: float = DEFAULT_WAIT_TIMEOUT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.profile_id = profile_id
        self.phota_conn_id = phota_conn_id
        self.deferrable = deferrable

    def poke(self, context: Context) -> PokeReturnValue:
        state = check_profile(self.hook, self.profile_id)
        return PokeReturnValue(is_done=state is not None, xcom_value=profile_result(state) if state else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        try:
            state = check_profile(self.hook, self.profile_id)
        except AirflowFailException as error:
            # As BaseSensorOperator.execute treats a failed poke in poke/reschedule mode.
            if self.soft_fail or self.never_fail:
                flag = "soft_fail" if self.soft_fail else "never_fail"
                raise AirflowSkipException(f"Skipping ({flag}): {error}") from error
            raise
        if state is not None:
            self.log.info("Profile %s is already READY", self.profile_id)
            return profile_result(state)
        defer_until_ready(self, profile_id=self.profile_id, phota_conn_id=self.phota_conn_id,
                          poll_interval=float(self.poke_interval), timeout=float(self.timeout))  # fmt: skip

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, str]:
        return profile_from_event(event, f"ProfileReadySensor {self.task_id}")
