"""Operators for Phota profiles: create (optionally waiting for training) and delete."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_phota import contract
from airflow_provider_phota._compat import AirflowException, BaseOperator, Context
from airflow_provider_phota.exceptions import PhotaValidationError
from airflow_provider_phota.operators.base import (
    DEFAULT_CONN_ID,
    PhotaHookMixin,
    fail_fast_on_permanent_errors,
    parse_list_argument,
)

if TYPE_CHECKING:
    from airflow_provider_phota.hooks.phota import PhotaHook


def latest_profile(hook: PhotaHook, tag: str, statuses: Collection[str]) -> tuple[str, str] | None:
    """The newest profile of ``tag`` whose status is in ``statuses``, as ``(profile_id, status)``."""
    for profile_id in reversed(hook.list_profile_ids(tag)):
        state = hook.get_profile_status(profile_id)
        if state.status in statuses:
            return profile_id, state.status
    return None


def find_reusable_profile(hook: PhotaHook, tag: str) -> tuple[str, str] | None:
    """The newest profile of ``tag`` that is training or READY. One that ended in ERROR or INACTIVE is not
    reused: paying again is the point of running again then."""
    return latest_profile(hook, tag, contract.PROFILE_REUSABLE_STATUSES)


class PhotaCreateProfileOperator(PhotaHookMixin, BaseOperator):
    """Create a Phota profile from 5-50 photo URLs and start its training; returns the profile id.

    With ``reuse_existing`` and a ``tag`` the tag acts as an idempotency key: a profile of that tag that is still
    training or already READY is reused, so task retries and DAG re-runs never pay for a second training. (Give
    each training you want its own tag, e.g. ``"{{ params.subject }}-{{ ds_nodash }}"``.)

    :param image_urls: public URLs of the subject's photos (templated; may come from XCom). ``standard`` needs
        10-50, ``fast`` 5-10.
    :param tag: an immutable label of 1-128 characters (templated), e.g. your end-user id.
    :param training_tier: ``standard`` (Full Train) or ``fast`` (Quick Train).
    :param reuse_existing: reuse a training or READY profile with the same tag instead of creating one.
    :param wait_for_ready: also wait until training is READY (deferring on the triggerer when ``deferrable``).
    :param deferrable: with ``wait_for_ready``, wait on the triggerer instead of in a worker slot.
    :param poll_interval: seconds between status checks while waiting.
    :param wait_timeout: seconds to wait for training in all.
    """

    template_fields: Sequence[str] = ("image_urls", "tag", "training_tier")
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
        deferrable: bool = True,
        poll_interval: float = 30.0,
        wait_timeout: float = 2 * 3600.0,
        phota_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_urls = image_urls
        self.tag = tag
        self.training_tier = training_tier
        self.reuse_existing = reuse_existing
        self.wait_for_ready = wait_for_ready
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.phota_conn_id = phota_conn_id

    def _validated_urls(self) -> list[str]:
        urls = parse_list_argument(self.image_urls)
        body = contract.compact({"image_urls": list(urls), "tag": self.tag, "training_tier": self.training_tier})
        violations = contract.validate_create_profile(body)
        if violations:
            raise PhotaValidationError(violations, context="PhotaCreateProfileOperator")
        return list(urls)

    def execute(self, context: Context) -> str:
        with fail_fast_on_permanent_errors():
            urls = self._validated_urls()
            profile_id = self._reuse_or_create(urls)
        if self.wait_for_ready:
            self._wait(profile_id)
        return profile_id

    def _reuse_or_create(self, urls: list[str]) -> str:
        if self.reuse_existing and self.tag:
            found = find_reusable_profile(self.hook, self.tag)
            if found:
                self.log.info("Reusing profile %s (tag %r, %s): no new training is paid for", found[0], self.tag,
                              found[1])  # fmt: skip
                return found[0]
        profile_id = self.hook.create_profile(urls, tag=self.tag, training_tier=self.training_tier)
        self.log.info("Created profile %s from %d photos (tag %r, %s training; billed once per profile)",
                      profile_id, len(urls), self.tag, self.training_tier)  # fmt: skip
        return profile_id

    def _wait(self, profile_id: str) -> None:
        from airflow_provider_phota.sensors.phota import check_profile, defer_until_ready

        if check_profile(self.hook, profile_id) is not None:
            return
        if self.deferrable:
            defer_until_ready(self, profile_id=profile_id, phota_conn_id=self.phota_conn_id,
                              poll_interval=self.poll_interval, timeout=self.wait_timeout)  # fmt: skip
        self._poll_in_worker(profile_id)

    def _poll_in_worker(self, profile_id: str) -> None:
        from airflow_provider_phota.sensors.phota import check_profile

        deadline = time.monotonic() + self.wait_timeout
        while check_profile(self.hook, profile_id) is None:
            if time.monotonic() + self.poll_interval > deadline:
                raise AirflowException(f"Profile {profile_id} not READY after {self.wait_timeout:.0f} s")
            time.sleep(self.poll_interval)
        self.log.info("Profile %s is READY", profile_id)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> str:
        from airflow_provider_phota.sensors.phota import profile_from_event

        return profile_from_event(event, f"PhotaCreateProfileOperator {self.task_id}")["profile_id"]


class PhotaDeleteProfileOperator(PhotaHookMixin, BaseOperator):
    """Permanently delete a profile and its data; returns whether it existed.

    :param profile_id: the profile to delete (templated).
    :param ignore_missing: treat an already deleted profile as success (the natural result of a retry).
    """

    template_fields: Sequence[str] = ("profile_id",)
    ui_color = "#fecaca"

    def __init__(
        self, *, profile_id: str, ignore_missing: bool = True, phota_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.profile_id = profile_id
        self.ignore_missing = ignore_missing
        self.phota_conn_id = phota_conn_id

    def execute(self, context: Context) -> bool:
        from airflow_provider_phota.exceptions import PhotaNotFoundError

        with fail_fast_on_permanent_errors():
            try:
                self.hook.delete_profile(self.profile_id)
            except PhotaNotFoundError:
                if not self.ignore_missing:
                    raise
                self.log.info("Profile %s does not exist (already deleted)", self.profile_id)
                return False
        self.log.info("Deleted profile %s", self.profile_id)
        return True
