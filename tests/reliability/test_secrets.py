"""Secrets: the API key never appears in task logs, XCom, rendered template fields, trigger kwargs (serialized and
as stored in the metadata database), the audit log, OpenLineage events, or exception messages."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagrun_support import openlineage_to_file, xcom_rows
from reliability_support import API, FAST_EXTRAS, STANDARD_URLS

from airflow_provider_phota.exceptions import PhotaAuthenticationError, PhotaError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import PhotoServer, make_subject_photos
from airflow_provider_phota.triggers.batch import PhotaBatchTrigger
from airflow_provider_phota.triggers.phota import _PhotaPollingTrigger

SECRET = "phota-SECRET-7f3c9a2e"
WRONG_SECRET = "phota-SECRET-wrong-0d41b7"
EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def occurrences(haystacks: dict[str, str], needle: str) -> dict[str, int]:
    """Where ``needle`` occurs (plain, or JSON-escaped), as ``{source: count}``; empty when nowhere."""
    escaped = json.dumps(needle)[1:-1]
    extra = escaped != needle
    found = {name: text.count(needle) + (text.count(escaped) if extra else 0) for name, text in haystacks.items()}
    return {name: count for name, count in found.items() if count}


@pytest.fixture(scope="module")
def secret_emulator() -> Iterator[PhotaEmulator]:
    with PhotaEmulator(api_key=SECRET, training_seconds=1.0, job_seconds=0.5) as emulator:
        yield emulator


@pytest.fixture
def secret_conn(secret_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> PhotaEmulator:
    secret_emulator.reset()
    connection = {"conn_type": "phota", "host": secret_emulator.base_url, "password": SECRET, "extra": FAST_EXTRAS}
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("PHOTA_EXAMPLE_POLL_SECONDS", "0.2")
    return secret_emulator


def _database_text(run_ids: list[str]) -> dict[str, str]:
    """Everything the metadata database holds about the runs, as text."""
    from airflow.models.log import Log
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        rendered = session.query(RenderedTaskInstanceFields).filter(RenderedTaskInstanceFields.run_id.in_(run_ids))
        instances = session.query(TaskInstance).filter(TaskInstance.run_id.in_(run_ids)).all()
        history = session.query(TaskInstanceHistory).filter(TaskInstanceHistory.run_id.in_(run_ids)).all()
        triggers = session.query(Trigger).all()
        return {
            "rendered_fields": json.dumps([r.rendered_fields for r in rendered], default=str),
            "rendered_rows": str(len(list(rendered))),
            "task_instances": json.dumps(
                [[ti.task_id, ti.next_kwargs, ti.rendered_map_index, ti.executor_config] for ti in instances],
                default=str,
            ),
            "task_instance_history": json.dumps([[h.task_id, h.next_kwargs] for h in history], default=str),
            "trigger_rows": json.dumps([[t.classpath, t.encrypted_kwargs, t.kwargs] for t in triggers], default=str),
            "audit_log": json.dumps([[r.event, r.extra] for r in session.query(Log).all()], default=str),
        }


@pytest.mark.usefixtures("airflow_db")
def test_example_dags_never_leak_the_api_key(
    secret_conn: PhotaEmulator,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.trigger import Trigger

    emu = secret_conn
    # Capture every trigger the operators and the sensor defer with, and the kwargs Airflow stores for it.
    serialized: list[Any] = []
    stored: list[Any] = []
    original_serialize = _PhotaPollingTrigger.serialize
    original_encrypt = Trigger.encrypt_kwargs

    def spy_serialize(self: _PhotaPollingTrigger) -> tuple[str, dict[str, Any]]:
        serialized.append(original_serialize(self))
        return serialized[-1]

    def spy_encrypt(kwargs: dict[str, Any]) -> str:
        stored.append((kwargs, original_encrypt(kwargs)))
        return stored[-1][1]

    monkeypatch.setattr(_PhotaPollingTrigger, "serialize", spy_serialize)
    original_batch_serialize = PhotaBatchTrigger.serialize

    def spy_batch_serialize(self: PhotaBatchTrigger) -> tuple[str, dict[str, Any]]:
        serialized.append(original_batch_serialize(self))
        return serialized[-1]

    monkeypatch.setattr(PhotaBatchTrigger, "serialize", spy_batch_serialize)
    monkeypatch.setattr(Trigger, "encrypt_kwargs", staticmethod(spy_encrypt))
    caplog.set_level(logging.DEBUG)

    bag = DagBag(str(EXAMPLES))
    folder = tmp_path / "photos"
    make_subject_photos(folder, count=10, subject="secret-subject")
    (tmp_path / "campaign.csv").write_text(
        "profile_tag,prompt,aspect_ratio,resolution,count\nbrand-face,{subject} holding a mug,1:1,1K,1\n"
    )
    runs = []
    lineage_events = tmp_path / "lineage" / "events.jsonl"
    lineage_events.parent.mkdir()
    with PhotoServer(folder) as server, openlineage_to_file(lineage_events, monkeypatch):
        photos = {"photos_uri": str(folder), "photos_base_url": server.base_url}
        subject_conf = {
            **photos,
            "subject": "secret-subject",
            "output_uri": f"file://{tmp_path}/out",
            "publish_uri": f"file://{tmp_path}/pub",
        }
        runs.append(bag.get_dag("phota_subject_pipeline").test(run_conf=subject_conf))
        runs.append(bag.get_dag("phota_scheduled_retraining").test(run_conf={**photos, "subject": "weekly"}))
    with PhotaHook() as hook:
        hook.create_profile(STANDARD_URLS, tag="brand-face")
    emu.advance(emu.training_seconds + 1)
    batch_conf = {"campaign_uri": str(tmp_path / "campaign.csv"), "output_uri": f"file://{tmp_path}/campaigns"}
    with openlineage_to_file(lineage_events, monkeypatch):
        runs.append(bag.get_dag("phota_marketing_batch").test(run_conf=batch_conf))

    assert [str(run.state) for run in runs] == ["success"] * 3, [str(run.state) for run in runs]
    captured = capfd.readouterr()
    haystacks = {
        "stdout": captured.out,
        "stderr": captured.err,
        "python_logging": "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records),
        "xcom": json.dumps([xcom_rows(run) for run in runs], default=str),
        "trigger_serialize": json.dumps(serialized, default=str),
        "trigger_kwargs_stored": json.dumps([[kwargs, encrypted] for kwargs, encrypted in stored], default=str),
        "output_files": "\n".join(p.read_text("latin-1") for p in tmp_path.rglob("*") if p.is_file()),
        "openlineage_events": lineage_events.read_text(),
        **_database_text([run.run_id for run in runs]),
    }

    # The search can find what it looks for: the key was really sent on every API request, the runs left
    # something in each place searched, and a planted key is found.
    assert emu.requests
    assert all(r.headers.get("X-API-Key") == SECRET for r in emu.requests)
    assert len(serialized) >= 3  # the sensor, the job triggers of the mapped generate and the enhance
    assert {"xcom", "stdout", "trigger_serialize", "rendered_fields"} <= {k for k, v in haystacks.items() if v}
    assert '"phota": {' in haystacks["openlineage_events"]  # the Phota tasks' events, with their run facet
    assert "token=" not in haystacks["openlineage_events"]  # no signed-URL token either
    assert int(haystacks["rendered_rows"]) > 0
    assert occurrences({**haystacks, "stdout": haystacks["stdout"] + SECRET}, SECRET) == {"stdout": 1}
    assert occurrences({"escaped": json.dumps({"k": SECRET})}, SECRET) == {"escaped": 1}

    assert occurrences(haystacks, SECRET) == {}


def test_errors_never_echo_the_key(secret_conn: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong key (401) and every failure the hook raises: the message, repr and arguments hold no key."""
    emu = secret_conn
    connection = {"conn_type": "phota", "host": emu.base_url, "password": WRONG_SECRET, "extra": FAST_EXTRAS}
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_WRONG", json.dumps(connection))
    errors: list[BaseException] = []
    with PhotaHook("phota_wrong") as wrong:
        with pytest.raises(PhotaAuthenticationError) as raised:
            wrong.list_profile_ids()
        errors.append(raised.value)
        ok, message = wrong.test_connection()
        assert not ok
    emu.inject_fault(f"{API}/*", status=500, count=FAST_EXTRAS["max_attempts"])
    emu.inject_fault(f"{API}/*", drop=True, count=FAST_EXTRAS["max_attempts"])
    with PhotaHook() as hook:
        for _ in range(2):
            with pytest.raises(PhotaError) as failure:
                hook.get_webhook_secret()
            errors.append(failure.value)

    assert emu.requests[0].headers["X-API-Key"] == WRONG_SECRET  # it was sent, so it could have been echoed
    text = {
        "messages": "\n".join([*(str(e) for e in errors), message]),
        "reprs": "\n".join(repr(e) for e in errors),
        "attributes": json.dumps([vars(e) for e in errors], default=str),
    }
    assert "Invalid API key" in text["messages"]
    assert occurrences(text, WRONG_SECRET) == {}
    assert occurrences(text, SECRET) == {}
