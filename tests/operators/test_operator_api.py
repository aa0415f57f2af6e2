"""The public surface of the operators, the sensor and the triggers: documented arguments, templated fields,
result shapes, and the one warning for arguments that have no effect."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_type_hints

import pytest

from airflow_provider_phota import results
from airflow_provider_phota._compat import AirflowException, AirflowFailException
from airflow_provider_phota.contract import image_format
from airflow_provider_phota.engine.requests import derived_client_request_id
from airflow_provider_phota.engine.runner import PER_KEY_XCOM, PhotaJobsOperator
from airflow_provider_phota.operators.batch import PhotaBatchOperator
from airflow_provider_phota.operators.images import (
    PhotaEditOperator,
    PhotaEnhanceOperator,
    PhotaGenerateOperator,
    PhotaRemixOperator,
)
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator, PhotaDeleteProfileOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.triggers.batch import PhotaBatchTrigger
from airflow_provider_phota.triggers.phota import PhotaJobTrigger, ProfileReadyTrigger

IMAGE_OPERATORS = [PhotaEditOperator, PhotaGenerateOperator, PhotaEnhanceOperator, PhotaRemixOperator]
OPERATORS: list[type] = [
    *IMAGE_OPERATORS,
    PhotaBatchOperator,
    PhotaCreateProfileOperator,
    PhotaDeleteProfileOperator,
    ProfileReadySensor,
]
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def documented(cls: type) -> dict[str, str]:
    """``{argument: its :param: text}`` from the docstrings of the class and its bases in this package (the four
    image operators document their own arguments and refer to ``PhotaStudioOperator`` for the shared ones)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is cls or klass.__module__.startswith(
            ("airflow_provider_phota.operators", "airflow_provider_phota.engine")
        ):
            doc = inspect.getdoc(klass) if klass is cls else (klass.__doc__ or "")
            found.update(re.findall(r":param (\w+):(.*?)(?=\n\s*:param |\Z)", doc or "", re.S))
    return found


def arguments(cls: type) -> set[str]:
    """The keyword arguments the class itself adds (up to, not including, Airflow's base classes)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("airflow_provider_phota") and "__init__" in vars(klass):
            names |= set(inspect.signature(klass.__init__).parameters) - {"self", "kwargs"}
    return names


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda cls: cls.__name__)
def test_every_argument_is_documented_and_templated_ones_say_so(cls: type) -> None:
    docs = documented(cls)

    assert arguments(cls) <= set(docs), f"undocumented: {arguments(cls) - set(docs)}"
    for name in arguments(cls):
        assert ("(templated" in docs[name] or "templated)" in docs[name]) == (name in cls.template_fields), name  # type: ignore[attr-defined]
    assert set(cls.template_fields) <= arguments(cls)  # type: ignore[attr-defined]
    assert set(getattr(cls, "template_fields_renderers", {})) <= set(cls.template_fields)  # type: ignore[attr-defined]
    assert "phota_conn_id" in cls.template_fields  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", [ProfileReadyTrigger, PhotaJobTrigger, PhotaBatchTrigger], ids=lambda cls: cls.__name__)
def test_trigger_arguments_are_documented(cls: type) -> None:
    assert set(inspect.signature(cls.__init__).parameters) - {"self"} == set(documented(cls))


def test_image_operators_template_every_image_argument_and_the_model_options() -> None:
    assert {"prompt", "images", "profile_ids", "num_output_images"} <= set(PhotaEditOperator.template_fields)
    assert {"image", "profile_ids", "num_output_images"} <= set(PhotaEnhanceOperator.template_fields)
    assert {"input_image", "reference_image", "profile_ids"} <= set(PhotaRemixOperator.template_fields)
    assert {"aspect_ratio", "resolution", "base_model", "quality"} <= set(PhotaGenerateOperator.template_fields)


def test_result_types_name_every_key() -> None:
    assert set(get_type_hints(results.ImageOperatorResult)) == {
        "endpoint",
        "job_id",
        "client_request_id",
        "request_id",
        "images",
        "known_subjects",
        "output_uris",
        "download_urls",
        "manifest_uri",
        "cost_usd",
        "cost_basis",
    }
    assert set(get_type_hints(results.CreateProfileResult)) == {
        "profile_id",
        "status",
        "message",
        "tag",
        "training_tier",
        "reused",
        "cost_usd",
        "cost_basis",
    }
    assert set(get_type_hints(results.DeleteProfileResult)) == {"profile_id", "deleted"}
    assert set(get_type_hints(results.BatchOperatorResult)) == {
        "endpoint",
        "manifest_uri",
        "rows",
        "succeeded",
        "failed",
        "images",
        "cost_usd",
        "cost_basis",
    }


# --- warnings ------------------------------------------------------------------------------------------------------


def context(task_id: str = "t") -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="api", run_id="manual__1", task_id=task_id, map_index=-1, try_number=1)
    return {"ti": ti, "task_instance": ti, "outlet_events": {}}


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if "no effect" in line]


@pytest.fixture
def conn(phota_emulator: PhotaEmulator, phota_connection: Callable[..., str]) -> PhotaEmulator:
    phota_connection(retry_wait=0.01, retry_max_wait=0.05, max_attempts=3)
    return phota_emulator


@pytest.mark.parametrize("name", ["use_async_job", "response_mode"])
def test_the_removed_waiting_knobs_are_refused(name: str) -> None:
    with pytest.raises((TypeError, AirflowException), match=name):  # Airflow 2 raises AirflowException
        PhotaGenerateOperator(task_id="t", prompt="a fox", **{name: False})


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda cls: cls.__name__)
def test_every_operator_pushes_each_result_key(cls: type) -> None:
    """``op.output["key"]`` works the same on every operator: each key of the result is an XCom of its own."""
    arguments = {
        PhotaEditOperator: {"prompt": "p", "images": ["https://example.com/a.jpg"]},
        PhotaGenerateOperator: {"prompt": "p"},
        PhotaEnhanceOperator: {"image": "https://example.com/a.jpg"},
        PhotaRemixOperator: {"input_image": "https://x.example/a.jpg", "reference_image": "https://x.example/b.jpg"},
        PhotaBatchOperator: {"endpoint": "generate", "requests": [{"prompt": "p"}], "output_path": "/tmp/x"},
        PhotaCreateProfileOperator: {"image_urls": ["https://example.com/a.jpg"]},
        PhotaDeleteProfileOperator: {"profile_id": "p1"},
        ProfileReadySensor: {"profile_id": "p1"},
    }[cls]
    task = cls(task_id="t", **arguments)

    assert task.multiple_outputs is (not issubclass(cls, PhotaJobsOperator) or PER_KEY_XCOM)
    assert task.output["cost_usd" if cls not in (PhotaDeleteProfileOperator, ProfileReadySensor) else "profile_id"].key


def test_a_first_submit_logs_submitted(conn: PhotaEmulator, task_log: Callable[[], str]) -> None:
    PhotaGenerateOperator(task_id="a", prompt="a fox", poll_interval=0.05, timeout=30).execute(context("a"))

    log = task_log()
    assert "Submitted /generate job " in log
    assert "Reattached" not in log
    assert warnings_in(log) == []


def test_wait_options_without_waiting_log_one_warning(conn: PhotaEmulator, task_log: Callable[[], str]) -> None:
    urls = [f"https://example.com/w/{i}.jpg" for i in range(10)]
    task = PhotaCreateProfileOperator(task_id="t", image_urls=urls, deferrable=True, poll_interval=5, timeout=60)

    result = task.execute(context())

    (warning,) = warnings_in(task_log())
    assert "deferrable=True, poll_interval=5, timeout=60 have no effect with wait_for_ready=False" in warning
    assert result["reused"] is False
    assert result["status"] == conn.profile_status(result["profile_id"])


@pytest.mark.parametrize(
    ("task", "method"),
    [
        (ProfileReadySensor(task_id="t", profile_id="a/b", poke_interval=1, timeout=5), "poke"),
        (PhotaDeleteProfileOperator(task_id="t", profile_id=".."), "execute"),
    ],
    ids=["sensor", "delete"],
)
def test_a_bad_profile_id_is_named_with_the_task_type(conn: PhotaEmulator, task: Any, method: str) -> None:
    with pytest.raises(AirflowFailException) as raised:
        getattr(task, method)(context())

    assert str(raised.value).startswith(f"Invalid {type(task).__name__} arguments: profile_id: ")
    assert "not '.' or '..'" in str(raised.value)
    assert conn.requests == []


@pytest.mark.parametrize("value", [{"profile_id": "p1", "status": "READY"}, "{'profile_id': 'p1', 'status': 'READY'}"])
def test_a_whole_result_as_profile_id_gets_a_hint(conn: PhotaEmulator, value: Any) -> None:
    """``profile_id=create.output`` (the whole result, as a dict or its rendered string) instead of
    ``create.output["profile_id"]``: named before any request, with the fix."""
    for task, method in (
        (ProfileReadySensor(task_id="t", profile_id=value), "poke"),
        (PhotaDeleteProfileOperator(task_id="t", profile_id=value), "execute"),
    ):
        with pytest.raises(AirflowFailException) as raised:
            getattr(task, method)(context())
        assert "is a whole task result, not an id" in str(raised.value)
        assert 'create.output["profile_id"]' in str(raised.value)
    assert conn.requests == []


# --- helpers behind the defects ------------------------------------------------------------------------------------


def test_derived_keys_are_stable_valid_and_distinct() -> None:
    from airflow_provider_phota.contract import CLIENT_REQUEST_ID_PATTERN

    key = "af:generate:" + "a" * 48
    first = derived_client_request_id(key, "job_1")

    assert first == derived_client_request_id(key, "job_1")  # every retry walks the same chain
    assert len({key, first, derived_client_request_id(key, "job_2"), derived_client_request_id(first, "job_1")}) == 4
    for value in (first, derived_client_request_id("user key/with spaces" * 10, "job_9")):
        assert CLIENT_REQUEST_ID_PATTERN.fullmatch(value)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00", "heic"),
        (b"GIF89a", None),
        (b"%PDF-1.7", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"", None),
    ],
)
def test_image_formats_are_recognised_by_their_magic_bytes(head: bytes, kind: str | None) -> None:
    assert image_format(head) == kind


def test_samples_the_tests_send_are_images(tmp_path: Path) -> None:
    import base64

    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    assert image_format((tmp_path / "a.jpg").read_bytes()[:16]) == "jpeg"
    assert image_format(base64.b64decode(PNG_1X1)[:16]) == "png"
