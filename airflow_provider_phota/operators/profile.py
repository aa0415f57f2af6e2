"""Operators for Phota profiles: create (optionally waiting for training) and delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_phota import contract, lineage, metrics
from airflow_provider_phota._compat import AirflowException, BaseOperator, Context
from airflow_provider_phota.engine.common import (
    DEFAULT_CONN_ID,
    PhotaHookMixin,
    fail_fast_on_permanent_errors,
    parse_list_argument,
    profile_id_violations,
    wait_argument_violations,
)
from airflow_provider_phota.exceptions import PhotaNotFoundError, PhotaValidationError, raise_if_invalid
from airflow_provider_phota.pricing import TRAINING, Cost, estimate_worst_case, training_cost
from airflow_provider_phota.waiting import defer_until_ready, profile_from_event, profile_result, ready_or_fail

if TYPE_CHECKING:
    from airflow_provider_phota.contract import ProfileState
    from airflow_provider_phota.results import CreateProfileResult, DeleteProfileResult, ProfileStatusResult

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
    :param max_cost_usd: the most this task may spend, in dollars (templated): the training tier's price must fit
        before anything is sent (a reuse costs nothing, but the limit is checked first), else the task fails
        without retries; a tier without a known price is refused. ``None`` (default): no limit.
    :param phota_conn_id: the Phota connection (default ``phota_default``; templated).
    """

    template_fields: Sequence[str] = ("image_urls", "tag", "training_tier", "max_cost_usd", "phota_conn_id")
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
        max_cost_usd: float | str | None = None,
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
        self.max_cost_usd = max_cost_usd
        self.phota_conn_id = phota_conn_id

    def _validated_urls(self) -> list[str]:
        urls = parse_list_argument(self.image_urls)
        body = contract.compact({"image_urls": urls, "tag": self.tag, "training_tier": self.training_tier})
        violations = contract.validate_create_profile(body)
        if self.wait_for_ready:
            violations += wait_argument_violations(self)
        elif isinstance(limit := self.cost_limit(), contract.Violation):
            violations.append(limit)
        if violations:
            raise PhotaValidationError(violations, context="PhotaCreateProfileOperator")
        return list(urls)

    def _cost(self, reused: bool) -> Cost:
        """What this task paid (nothing for a reused profile), from the connection's price table."""
        return training_cost(self.training_tier, self.hook.prices, reused=reused)

    def _note_lineage(self, profile_id: str, reused: bool, cost_usd: float | None, cost_basis: str) -> None:
        """Inputs: the training photos' URLs (without their query strings); output: the profile."""
        urls = parse_list_argument(self.image_urls)
        self._lineage = lineage.LineageRecord(
            inputs=[lineage.url_dataset(str(url)) for url in urls] if isinstance(urls, list) else [],
            profiles_made=[profile_id],
            run=lineage.run_facts(
                endpoint="profiles/add",
                profileId=profile_id,
                trainingTier=self.training_tier,
                photoCount=len(urls) if isinstance(urls, list) else None,
                reused=reused,
                costUsd=cost_usd,
                costBasis=cost_basis,
            ),
        )

    def _warn_about_ineffective_arguments(self) -> None:
        """One warning naming the wait arguments that have no effect without ``wait_for_ready``."""
        if self.wait_for_ready:
            return
        unused = ["deferrable=True"] if self.deferrable else []
        unused += [f"poll_interval={self.poll_interval!r}"] if self.poll_interval != DEFAULT_POLL_INTERVAL else []
        unused += [f"timeout={self.timeout!r}"] if self.timeout != DEFAULT_WAIT_TIMEOUT else []
        if unused:
            verb = "has" if len(unused) == 1 else "have"
            self.log.warning("%s %s no effect with wait_for_ready=False: the task does not wait for training",
                             ", ".join(unused), verb)  # fmt: skip

    def execute(self, context: Context) -> CreateProfileResult:
        self._warn_about_ineffective_arguments()
        with fail_fast_on_permanent_errors():
            urls = self._validated_urls()
            prices = self.hook.prices
            self.check_cost_limit(estimate_worst_case(TRAINING, {"training_tier": self.training_tier}, prices))
            state, reused = self._reuse_or_create(urls)
        cost = self._cost(reused)
        self.log.info("Cost: %s", cost.basis)
        if not reused:
            metrics.record_training(self.training_tier, cost.usd)
        if not self.wait_for_ready or ready_or_fail(state):
            return self._result(state, reused, cost)
        if self.deferrable:
            defer_until_ready(
                self,
                profile_id=state.profile_id,
                phota_conn_id=self.phota_conn_id,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                kwargs={"reused": reused},
            )
        return self._result(self._poll_in_worker(state.profile_id), reused, cost)

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
        with fail_fast_on_permanent_errors():
            try:
                state = self.hook.wait_for_profile(profile_id, poll_interval=self.poll_interval, timeout=self.timeout)
            except TimeoutError as error:
                raise AirflowException(str(error)) from None
        ready_or_fail(state)
        self.log.info("Profile %s is READY", profile_id)
        return state

    def _result(self, state: ProfileStatusResult | ProfileState, reused: bool, cost: Cost) -> CreateProfileResult:
        ready = state if isinstance(state, dict) else profile_result(state)
        self._note_lineage(ready["profile_id"], reused, cost.usd_float, cost.basis)
        return {
            **ready,
            "tag": self.tag,
            "training_tier": self.training_tier,
            "reused": reused,
            "cost_usd": cost.usd_float,
            "cost_basis": cost.basis,
        }

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, reused: bool = False
    ) -> CreateProfileResult:
        """Resume from the trigger's event (see :func:`airflow_provider_phota.waiting.profile_from_event`).

        :param context: the task context.
        :param event: the trigger's event.
        :param reused: whether the profile was reused (passed by the deferral); the cost follows from it.
        """
        ready = profile_from_event(event, f"PhotaCreateProfileOperator {self.task_id}")
        return self._result(ready, reused, self._cost(reused))


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
        with fail_fast_on_permanent_errors():
            raise_if_invalid(profile_id_violations("profile_id", self.profile_id), type(self).__name__)
            try:
                self.hook.delete_profile(self.profile_id)
            except PhotaNotFoundError:
                if not self.ignore_missing:
                    raise
                self.log.info("Profile %s does not exist (already deleted)", self.profile_id)
                return {"profile_id": self.profile_id, "deleted": False}
        self.log.info("Deleted profile %s", self.profile_id)
        self._note_lineage()
        return {"profile_id": self.profile_id, "deleted": True}

    def _note_lineage(self) -> None:
        run = lineage.run_facts(endpoint="profiles/delete", profileId=self.profile_id)
        self._lineage = lineage.LineageRecord(profiles_deleted=[self.profile_id], run=run)
