"""What every Phota operator (and the sensor) shares: the hook, the error mapping, warnings, asset-event metadata.

Import cost matters here: DAG files import operators at parse time, so the hook (requests, tenacity) and the
triggers (aiohttp) are imported only when a task runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_phota._compat import AirflowFailException, Asset, Context
from airflow_provider_phota.contract import Violation
from airflow_provider_phota.events import EVENT_STATUSES

if TYPE_CHECKING:
    from airflow_provider_phota.hooks.phota import PhotaHook

DEFAULT_CONN_ID = "phota_default"


class PhotaHookMixin:
    """Gives an operator or sensor a lazily built :class:`PhotaHook` for ``self.phota_conn_id``."""

    phota_conn_id: str

    @cached_property
    def hook(self) -> PhotaHook:
        from airflow_provider_phota.hooks.phota import PhotaHook

        return PhotaHook(self.phota_conn_id)


@contextmanager
def fail_fast_on_permanent_errors() -> Iterator[None]:
    """Turn errors that no retry can fix (bad input, moderation, auth, credit, not found) into
    ``AirflowFailException``, so Airflow does not burn its task retries on them. Retryable errors pass through."""
    from airflow_provider_phota.exceptions import PhotaError

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
    """What is wrong with a waiting task's ``poll_interval`` and ``timeout``: each must be seconds > 0."""
    problems = []
    for name in ("poll_interval", "timeout"):
        value = getattr(task, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append(Violation(name, f"{value!r} is not a positive number of seconds", "a number > 0"))
    return problems


def warn_unused_wait_arguments(
    task: Any, reason: str, *, poll_interval: float, timeout: float, others: Sequence[str] = ()
) -> None:
    """Log one warning naming the wait arguments (``deferrable``, and ``poll_interval``/``timeout`` when changed
    from the defaults given here) and ``others`` that have no effect because the task does not wait."""
    unused = ["deferrable=True"] if task.deferrable else []
    if task.poll_interval != poll_interval:
        unused.append(f"poll_interval={task.poll_interval!r}")
    if task.timeout != timeout:
        unused.append(f"timeout={task.timeout!r}")
    unused += others
    if unused:
        task.log.warning("%s %s no effect %s", ", ".join(unused), "has" if len(unused) == 1 else "have", reason)


def record_asset_events(context: Context, outlets: list[Any], extra: Mapping[str, Any]) -> None:
    """Attach ``extra`` (output URIs, counts) to the asset events of this task's Asset outlets, so a publish DAG
    scheduled on the asset knows what arrived."""
    assets = [outlet for outlet in outlets if isinstance(outlet, Asset)]
    if not assets:
        return
    events = context["outlet_events"]
    for asset in assets:
        events[asset].extra.update(dict(extra))
