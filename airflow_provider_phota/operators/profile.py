"""Operators for Phota profiles: create (optionally waiting for training) and delete."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_phota import contract
from airflow_provider_phota._compat import AirflowException, BaseOperator, Context
from airflow_provider_phota.exceptions import PhotaValidationError, raise_if_invalid
from airflow_provider_phota.operators.base import (
    DEFAULT_CONN_ID,
    PhotaHookMixin,
    fail_fast_on_permanent_errors,
    parse_list_argument,
    wait_argument_violations,
    warn_unused_wait_arguments,
)

if TYPE_CHECKING:
    from airflow_provider_phota.contract import ProfileState
    from airflow_provider_phota.results import CreateProfileResult, DeleteProfileResult

DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_WAIT_TIMEOUT = 2 * 3600.0


class PhotaCreateProfileOperator(PhotaHookMixin, BaseOperator):
    """Create a Phota profile from 5-50 photo URLs and start its training; returns a
    :class:`~airflow_provider_phota.results.CreateProfileResult`. Each of its keys is also pushed as an XCom of its
    own (``multiple_outputs=True`` unless given), so downstream tasks take ``create.output["profile_id"]``.

    With ``reuse_existing`` and a ``tag`` the tag acts as an idempotency key: a profile of that tag that is still
    training or already READY is reused, so task retries and DAG re-runs never pay for a second training. (Give
    each training you want its own tag, e.g. ``"{{ params.subject }}-{{ ds_nodash }}"``.)

    :param image_urls: public URLs of the subject's photos (templated; may come from XCom). ``standard`` needs
        10-50, ``fast`` 5-10.
    :param tag: an immutable label of 1-128 characters (templated), e.g. your end-user id.
    :param training_tier: ``standard`` (Full Train, default) or ``fast`` (Quick Train) (templated).
    :param reuse_existing: reuse a training or READY profile with the same tag instead of creating one.
    :param wait_for_ready: also wait until training is READY; a training that ends in ERROR fails the task without
        retries.
    :param deferrable: with ``wait_for_ready``, wait on the triggerer instead of in a worker slot. Defaults to
        ``[operators] default_deferrable`` (``False`` unless the deployment turns it on).
    :param poll_interval: with ``wait_for_ready``, seconds between status checks (default 30).
    :param timeout: with ``wait_for_ready``, seconds to wait for training in all (default two hours).
    :param phota_conn_id: the Phota connection (default ``phota_default``; templated).
    """

    template_fields: Sequence[str] = ("image_urls", "tag", "training_tier", "phota_conn_id")
    template_fields_renderers = {"image_urls": "json"}
    ui_color = "#e9d5ff"

    def __init__(
        self,
        *,
        image_urls: Sequence[str] | str,
        tag: str | None = None,
        training_tier: str = "standard",
        reuse_existing: bool = True,
        wait_for_ready: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        phota_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.image_urls = image_urls
        self.tag = tag
        self.training_tier = training_tier
        self.reuse_existing = reuse_existing
        self.wait_for_ready = wait_for_ready
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.phota_conn_id = phota_conn_id

    def _validated_urls(self) -> list[str]:
        urls = parse_list_argument(self.image_urls)
        body = contract.compact({"image_urls": urls, "tag": self.tag, "training_tier": self.training_tier})
        violations = contract.validate_create_profile(body)
        if self.wait_for_ready:
            violations += wait_argument_violations(self)
        if violations:
            raise PhotaValidationError(violations, context="PhotaCreateProfileOperator")
        return list(urls)

    def _warn_about_ineffective_arguments(self) -> None:
        if not self.wait_for_ready:
            warn_unused_wait_arguments(
                self,
                "with wait_for_ready=False: the task does not wait for training",
                poll_interval=DEFAULT_POLL_INTERVAL,
                timeout=DEFAULT_WAIT_TIMEOUT,
            )

    def execute(self, context: Context) -> CreateProfileResult:
        from airflow_provider_phota.waiting import defer_until_ready, ready_or_fail

        self._warn_about_ineffective_arguments()
        with fail_fast_on_permanent_errors():
            urls = self._validated_urls()
            state, reused = self._reuse_or_create(urls)
        if not self.wait_for_ready or ready_or_fail(state):
            return self._result(state, reused)
        if self.deferrable:
            defer_until_ready(
                self,
                profile_id=state.profile_id,
                phota_conn_id=self.phota_conn_id,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                kwargs={"reused": reused},
            )
        return self._result(self._poll_in_worker(state.profile_id), reused)

    def _reuse_or_create(self, urls: list[str]) -> tuple[ProfileState, bool]:
        """The profile to use and whether it was reused; its state comes from one status check. The tag is listed
        once: the same ids serve the reuse check and the create's duplicate check."""
        known_ids = None
        if self.reuse_existing and self.tag:
            known_ids = self.hook.list_profile_ids(self.tag)
            found = self.hook.latest_profile(self.tag, known_profile_ids=known_ids)
            if found:
                self.log.info(
                    "Reusing profile %s (tag %r, %s): no new training is paid for",
                    found.profile_id,
                    self.tag,
                    found.status,
                )
                return found, True
        profile_id = self.hook.create_profile(
            urls, tag=self.tag, training_tier=self.training_tier, known_profile_ids=known_ids
        )
        self.log.info(
            "Created profile %s from %d photos (tag %r, %s training; billed once per profile)",
            profile_id,
            len(urls),
            self.tag,
            self.training_tier,
        )
        return self.hook.get_profile_status(profile_id), False

    def _poll_in_worker(self, profile_id: str) -> ProfileState:
        from airflow_provider_phota.waiting import ready_or_fail

        deadline = time.monotonic() + self.timeout
        while True:
            if time.monotonic() + self.poll_interval > deadline:
                raise AirflowException(f"Profile {profile_id} not READY after {self.timeout:.0f} s")
            time.sleep(self.poll_interval)
            with fail_fast_on_permanent_errors():
                state = self.hook.get_profile_status(profile_id)
            if ready_or_fail(state):
                self.log.info("Profile %s is READY", profile_id)
                return state

    def _result(self, state: ProfileState, reused: bool) -> CreateProfileResult:
        return {
            "profile_id": state.profile_id,
            "status": state.status,
            "message": state.message,
            "tag": self.tag,
            "training_tier": self.training_tier,
            "reused": reused,
        }

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, reused: bool = False
    ) -> CreateProfileResult:
        """Resume from the trigger's event (see :func:`airflow_provider_phota.waiting.profile_from_event`).

        :param context: the task context.
        :param event: the trigger's event.
        :param reused: whether the profile was reused (passed by the deferral).
        """
        from airflow_provider_phota.waiting import profile_from_event

        ready = profile_from_event(event, f"PhotaCreateProfileOperator {self.task_id}")
        return {**ready, "tag": self.tag, "training_tier": self.training_tier, "reused": reused}


class PhotaDeleteProfileOperator(PhotaHookMixin, BaseOperator):
    """Permanently delete a profile and its data; returns a
    :class:`~airflow_provider_phota.results.DeleteProfileResult` (each key also an XCom of its own, as for
    :class:`PhotaCreateProfileOperator`).

    :param profile_id: the profile to delete (templated).
    :param ignore_missing: treat an already deleted profile as success (the natural result of a retry), with
        ``deleted: False`` in the result. Otherwise a missing profile fails the task without retries.
    :param phota_conn_id: the Phota connection (default ``phota_default``; templated).
    """

    template_fields: Sequence[str] = ("profile_id", "phota_conn_id")
    ui_color = "#fecaca"

    def __init__(
        self, *, profile_id: str, ignore_missing: bool = True, phota_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.profile_id = profile_id
        self.ignore_missing = ignore_missing
        self.phota_conn_id = phota_conn_id

    def execute(self, context: Context) -> DeleteProfileResult:
        from airflow_provider_phota.exceptions import PhotaNotFoundError

        with fail_fast_on_permanent_errors():
            raise_if_invalid(contract.validate_id("profile_id", self.profile_id), type(self).__name__)
            try:
                self.hook.delete_profile(self.profile_id)
            except PhotaNotFoundError:
                if not self.ignore_missing:
                    raise
                self.log.info("Profile %s does not exist (already deleted)", self.profile_id)
                return {"profile_id": self.profile_id, "deleted": False}
        self.log.info("Deleted profile %s", self.profile_id)
        return {"profile_id": self.profile_id, "deleted": True}
