"""Waiting for a profile's training: the steps ``ProfileReadySensor`` and ``PhotaCreateProfileOperator`` share.

Check once, hand the wait to the triggerer, and turn the trigger's event into a result or an error. The same
error means the same outcome whether it is seen before deferring or by the trigger: a failed training, a 404 or a
401 fails the task without retries, a transient error leaves room for a retry.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_phota._compat import AirflowException, AirflowFailException, AirflowSensorTimeout
from airflow_provider_phota.engine.common import (
    DEFER_TIMEOUT_GRACE_SECONDS,
    fail_fast_on_permanent_errors,
    validate_event,
)
from airflow_provider_phota.events import EVENT_ERROR, EVENT_FAILED, EVENT_SUCCESS, EVENT_TIMEOUT, error_is_retryable

if TYPE_CHECKING:
    from airflow_provider_phota._compat import BaseOperator
    from airflow_provider_phota.contract import ProfileState
    from airflow_provider_phota.hooks.phota import PhotaHook
    from airflow_provider_phota.results import ProfileStatusResult

__all__ = ["DEFER_TIMEOUT_GRACE_SECONDS", "check_profile", "defer_until_ready", "profile_from_event"]


def profile_result(state: ProfileState) -> ProfileStatusResult:
    """The XCom value of a profile's state."""
    return {"profile_id": state.profile_id, "status": state.status, "message": state.message}


def ready_or_fail(state: ProfileState) -> bool:
    """``True`` when READY, ``False`` while training; a failed training fails the task without retries."""
    if state.is_failed:
        raise AirflowFailException(
            f"Phota profile {state.profile_id} is {state.status}: {state.message or 'no message'}"
        )
    return state.is_ready


def check_profile(hook: PhotaHook, profile_id: str) -> ProfileState | None:
    """The state if READY, ``None`` while training; a failed profile or a permanent error (404, 401) fails the
    task without retries."""
    with fail_fast_on_permanent_errors():
        state = hook.get_profile_status(profile_id)
    return state if ready_or_fail(state) else None


def defer_until_ready(
    task: BaseOperator,
    *,
    profile_id: str,
    phota_conn_id: str,
    poll_interval: float,
    timeout: float,
    kwargs: dict[str, Any] | None = None,
) -> NoReturn:
    """Hand the wait to the triggerer; ``task.execute_complete(context, event, **kwargs)`` resumes it. The deadline
    is absolute, so a triggerer restart keeps it."""
    from airflow_provider_phota.triggers.phota import ProfileReadyTrigger

    deadline = time.time() + timeout
    task.log.info(
        "Deferring until profile %s is READY (polling every %g s, for at most %g s)",
        profile_id,
        poll_interval,
        timeout,
    )
    task.defer(
        trigger=ProfileReadyTrigger(profile_id, phota_conn_id, poll_interval, deadline),
        method_name="execute_complete",
        kwargs=kwargs,
        timeout=timedelta(seconds=timeout + DEFER_TIMEOUT_GRACE_SECONDS),
    )


def profile_from_event(event: Mapping[str, Any] | None, task: str) -> ProfileStatusResult:
    """Interpret a ProfileReadyTrigger event: READY returns the result; ERROR/INACTIVE fails without retries; a
    timeout raises Airflow's sensor timeout (so ``soft_fail`` applies); a trigger error fails, without retries when
    the event says no retry can help (a 404, a 401)."""
    checked = validate_event(event, task)
    profile_id = str(checked.get("profile_id"))
    message = str(checked.get("message") or "")
    status = checked["status"]
    if status == EVENT_SUCCESS:
        return {"profile_id": profile_id, "status": str(checked.get("api_status")), "message": message}
    if status == EVENT_FAILED:
        raise AirflowFailException(
            f"Phota profile {profile_id} is {checked.get('api_status')}: {message or 'no message'}"
        )
    if status == EVENT_TIMEOUT:
        raise AirflowSensorTimeout(f"Timed out waiting for Phota profile {profile_id}: {message}")
    assert status == EVENT_ERROR
    error = AirflowException if error_is_retryable(checked) else AirflowFailException
    raise error(f"Waiting for Phota profile {profile_id} failed: {message}")
