"""What every Phota operator and the sensor share: the hook, the error mapping, the arguments' checks, the cost guard,
asset-event metadata and the OpenLineage hook.

Import cost matters here: DAG files import operators at parse time, so the hook (requests, tenacity) and the
triggers (aiohttp) are imported only when a task runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_phota._compat import AirflowFailException, Asset, Context
from airflow_provider_phota.contract import Violation, validate_id
from airflow_provider_phota.events import EVENT_STATUSES
from airflow_provider_phota.exceptions import PhotaCostLimitError, PhotaError
from airflow_provider_phota.lineage import LineageRecord, operator_lineage
from airflow_provider_phota.pricing import Cost, limit_refusal, parse_limit, usd

if TYPE_CHECKING:
    from airflow_provider_phota.hooks.phota import PhotaHook

DEFAULT_CONN_ID = "phota_default"
DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_JOB_TIMEOUT = 3600.0
MAX_FAILED_JOBS = 10  # a request whose jobs FAILED this many times stops paying for new ones
# The defer timeout is a backstop a little past the trigger's own deadline: the trigger reports the timeout
# itself (after a final re-check); Airflow's timeout only fires if the triggerer was down at the deadline.
DEFER_TIMEOUT_GRACE_SECONDS = 60.0


class PhotaHookMixin:
    """A lazily built :class:`PhotaHook` for ``self.phota_conn_id``, the ``max_cost_usd`` guard and the
    OpenLineage hook, for every Phota operator and the sensor."""

    phota_conn_id: str
    max_cost_usd: Any = None
    _lineage: LineageRecord | None = None  # what the task read and wrote, noted while it ran

    @cached_property
    def hook(self) -> PhotaHook:
        from airflow_provider_phota.hooks.phota import PhotaHook

        return PhotaHook(self.phota_conn_id)

    def cost_limit(self) -> Decimal | Violation | None:
        """``max_cost_usd`` parsed: the limit, ``None`` without one, or what is wrong with it."""
        return parse_limit("max_cost_usd", self.max_cost_usd)

    def check_cost_limit(self, estimate: Cost, *, scope: str = "this task") -> Decimal | None:
        """With ``max_cost_usd``, refuse ``estimate`` (a worst case) when it is above the limit or unknown, before
        anything is sent: :class:`PhotaCostLimitError`. Returns the limit (``None`` without one). ``max_cost_usd``
        has been validated with the other arguments."""
        limit = self.cost_limit()
        if limit is None or isinstance(limit, Violation):
            return None
        refusal = limit_refusal(estimate, limit, scope=scope, where=f"connection {self.phota_conn_id!r}")
        if refusal:
            raise PhotaCostLimitError(refusal)
        assert estimate.usd is not None  # an unknown cost is refused
        self.log.info(  # type: ignore[attr-defined]
            "Worst-case cost %s fits max_cost_usd %s (%s)", usd(estimate.usd), usd(limit), estimate.basis
        )
        return limit

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The OpenLineage provider's hook: this task's inputs, outputs and ``phota`` run facet
        (:mod:`airflow_provider_phota.lineage`). Called only where that provider is installed.

        :param task_instance: the finished task instance (unused: the task noted what it did while it ran).
        """
        return operator_lineage(self._lineage, self.hook.settings.base_url if self._lineage else "")


@contextmanager
def fail_fast_on_permanent_errors() -> Iterator[None]:
    """Turn errors that no retry can fix (bad input, moderation, auth, credit, not found) into
    ``AirflowFailException``, so Airflow does not burn its task retries on them. Retryable errors pass through."""
    try:
        yield
    except PhotaError as error:
        if not error.retry_task:
            raise AirflowFailException(str(error)) from error
        raise


def parse_list_argument(value: Any, *, split: bool = True) -> Any:
    """A list from a list, or from the string a template rendered: a JSON/Python list literal, or (with
    ``split``) items one per line or comma; without ``split`` a plain string is one item (base64 may contain
    newlines). So ``image_urls="{{ ti.xcom_pull('ingest') }}"`` works without native rendering. Anything else is
    returned as it is, for validation to name."""
    if not isinstance(value, str):
        return list(value) if isinstance(value, list | tuple) else value
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list | tuple):
            return [str(item) for item in parsed]
    if not split:
        return [value]
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def validate_event(event: Any, task: str) -> Mapping[str, Any]:
    """A trigger event is a dict with a known ``status``; anything else is a bug worth failing loudly on."""
    if not isinstance(event, Mapping) or event.get("status") not in EVENT_STATUSES:
        raise AirflowFailException(f"{task} resumed with an unexpected trigger event: {event!r}")
    return event


def wait_argument_violations(task: Any) -> list[Violation]:
    """What is wrong with a waiting task's ``poll_interval``, ``timeout`` and ``max_cost_usd``."""
    problems = []
    for name in ("poll_interval", "timeout"):
        value = getattr(task, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append(Violation(name, f"{value!r} is not a positive number of seconds", "a number > 0"))
    limit = task.cost_limit()
    return [*problems, limit] if isinstance(limit, Violation) else problems


def record_asset_events(context: Context, outlets: list[Any], extra: Mapping[str, Any]) -> None:
    """Attach ``extra`` (output URIs, counts) to the asset events of this task's Asset outlets, so a publish DAG
    scheduled on the asset knows what arrived."""
    assets = [outlet for outlet in outlets if isinstance(outlet, Asset)]
    if not assets:
        return
    events = context["outlet_events"]
    for asset in assets:
        events[asset].extra.update(dict(extra))


def profile_id_violations(name: str, value: Any) -> list[Violation]:
    """What is wrong with a profile id argument (the id rule of :func:`contract.validate_id`), with a hint when it
    is a whole result (``create.output`` where ``create.output["profile_id"]`` was meant)."""
    if isinstance(value, Mapping) or (isinstance(value, str) and value.lstrip().startswith("{")):
        shown = str(value)[:80]
        return [Violation(name, f"{shown!r} is a whole task result, not an id", 'create.output["profile_id"]')]
    return validate_id(name, value)
