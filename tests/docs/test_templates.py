"""Every templated argument of the DAGs the documentation shows (docs/snippets, example_dags) renders with Airflow's
own Jinja environment of the DAG (its filters, ``StrictUndefined``) on a manually triggered run, which has no logical
date and so no ``ds``, and on a scheduled run, which has one.

``dag.test()`` always gives its run a logical date, so the snippets' runs (test_snippets.py) cannot show the manual
case: this renders each field against the context Airflow 3 gives each kind of run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jinja2
import pytest
from dagrun_support import dag_bag
from docs_helpers import BUNDLE, ROOT, SNIPPETS

EXAMPLES = ROOT / "example_dags"
LOGICAL_DATE = datetime(2026, 3, 1, tzinfo=UTC)


class XComValue:
    """What ``ti.xcom_pull`` gives a template here: any key or index of it works, as a real result's would."""

    def __getitem__(self, key: Any) -> XComValue:
        return self

    def __str__(self) -> str:
        return "xcom-value"


class TaskInstance:
    def xcom_pull(self, *args: Any, **kwargs: Any) -> XComValue:
        return XComValue()


def context(dag: Any, kind: str) -> dict[str, Any]:
    """The template context of a run of ``kind``: what Airflow 3 puts there, less what these templates never use."""
    ti = TaskInstance()
    run_id = f"{kind}__2026-03-01T00:00:00+00:00"
    found: dict[str, Any] = {
        "dag": dag,
        "run_id": run_id,
        "params": {name: dag.params[name] for name in dag.params},
        "ti": ti,
        "task_instance": ti,
    }
    if kind == "scheduled":  # a manual run of Airflow 3 has no logical date: none of these keys
        found |= {
            "logical_date": LOGICAL_DATE,
            "ds": LOGICAL_DATE.strftime("%Y-%m-%d"),
            "ds_nodash": LOGICAL_DATE.strftime("%Y%m%d"),
            "ts": LOGICAL_DATE.isoformat(),
            "data_interval_start": LOGICAL_DATE,
            "data_interval_end": LOGICAL_DATE,
        }
    return found


def templates(value: Any) -> Iterator[str]:
    """The template strings inside an argument (lists and dicts included; XCom references are not templates)."""
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from templates(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from templates(item)


def templated_fields(dag: Any) -> Iterator[tuple[str, str, str]]:
    for task in dag.tasks:
        arguments = getattr(task, "partial_kwargs", None)  # a mapped task keeps its fixed arguments there
        for field in task.template_fields:
            value = arguments.get(field) if arguments is not None else getattr(task, field, None)
            for template in templates(value):
                yield task.task_id, field, template


def render(dag: Any, kind: str) -> dict[str, str]:
    env = dag.get_template_env()
    assert env.undefined is jinja2.StrictUndefined  # an unknown name fails instead of rendering empty
    values = context(dag, kind)
    return {f"{task_id}.{field}": env.from_string(t).render(values) for task_id, field, t in templated_fields(dag)}


@pytest.fixture(scope="module")
def dags(airflow_db: None) -> list[Any]:
    bags = [dag_bag(SNIPPETS, bundle=BUNDLE), dag_bag(EXAMPLES, bundle="example-dags")]
    return [bag.get_dag(dag_id) for bag in bags for dag_id in sorted(bag.dag_ids)]


@pytest.mark.parametrize("kind", ["manual", "scheduled"])
def test_every_documented_template_renders(dags: list[Any], kind: str) -> None:
    rendered = {}
    for dag in dags:
        rendered |= {f"{dag.dag_id}.{name}": value for name, value in render(dag, kind).items()}
    assert "phota_portraits.portraits.output_path" in rendered  # the README's DAG is among them
    assert rendered["phota_portraits.portraits.output_path"].endswith(f"{kind}__2026-03-01T00-00-00-00-00")


def test_a_logical_date_template_fails_on_a_manual_run(dags: list[Any]) -> None:
    """The check above can fail: ``{{ ds }}``, the README's old mistake, does on a manual run."""
    env = dags[0].get_template_env()
    with pytest.raises(jinja2.UndefinedError, match="ds"):
        env.from_string("s3://bucket/{{ ds }}").render(context(dags[0], "manual"))
    assert env.from_string("s3://bucket/{{ ds }}").render(context(dags[0], "scheduled")) == "s3://bucket/2026-03-01"
