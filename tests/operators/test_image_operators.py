"""Image operators in real Airflow tasks (dag.test()) against the emulator: files, XCom, retries, validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dagrun_support import asset_event_extras, return_value, run_dag, task_states, try_numbers, xcom_rows
from PIL import Image

from airflow_provider_phota.contract import CLIENT_REQUEST_ID_PATTERN, Violation
from airflow_provider_phota.engine.requests import classify_image, stable_client_request_id
from airflow_provider_phota.testing import PhotaEmulator

pytestmark = pytest.mark.usefixtures("airflow_db")
MAX_ATTEMPTS = 3


@pytest.fixture
def conn(phota_emulator: PhotaEmulator, phota_connection: Callable[..., str]) -> PhotaEmulator:
    """The emulator behind ``phota_default``, with fast retries so fault tests take milliseconds."""
    phota_connection(retry_wait=0.01, retry_max_wait=0.05, max_attempts=MAX_ATTEMPTS)
    return phota_emulator


@pytest.fixture
def ready_profile(conn: PhotaEmulator) -> str:
    from airflow_provider_phota.hooks.phota import PhotaHook

    profile_id = PhotaHook().create_profile([f"https://example.com/p/{i}.jpg" for i in range(10)], tag="subject")
    conn.advance(conn.training_seconds + 1)
    assert conn.profile_status(profile_id) == "READY"
    return profile_id


def write_png(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (120, 80, 200)).save(path)
    return path


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix != ".json")


def assert_images(uris: list[str], size: tuple[int, int], image_format: str) -> None:
    for uri in uris:
        assert uri.startswith("file:///")
        with Image.open(uri.removeprefix("file://")) as image:
            assert image.size == size
            assert image.format == image_format


def assert_small_xcom(dag_run: Any) -> None:
    """XCom holds ids, URIs and counts only: no image bytes, no base64, nothing large."""
    for _task, _map, _key, value in xcom_rows(dag_run):
        encoded = json.dumps(value)
        assert len(encoded) < 4096, encoded[:200]
        assert "base64" not in encoded
        assert "iVBOR" not in encoded
        assert "/9j/" not in encoded


def test_generate_deferrable_writes_images_and_returns_small_summary(conn: PhotaEmulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    dag_run = run_dag("op_generate_deferrable", out=str(out), prompt="a lighthouse at dawn")

    assert task_states(dag_run) == {"generate": "success"}
    summary = return_value(dag_run, "generate")
    assert set(summary) == RESULT_KEYS
    assert summary["images"] == 2
    assert summary["endpoint"] == "generate"
    assert summary["manifest_uri"] == f"file://{out}/generate-manifest.json"
    assert summary["known_subjects"] == {}
    assert summary["job_id"] in conn.jobs
    assert summary["request_id"].startswith("req_")
    assert summary["download_urls"] == []
    assert_images(summary["output_uris"], (2048, 1152), "JPEG")
    assert [f"file://{p}" for p in image_files(out)] == sorted(summary["output_uris"])
    assert_small_xcom(dag_run)
    # The job went through the API's async mode with an idempotency key, and was charged once.
    (submit,) = conn.requests_to("/v1/phota/generate", "POST")
    assert submit.json["async"] is True
    assert submit.json["response_mode"] == "urls"
    assert CLIENT_REQUEST_ID_PATTERN.fullmatch(submit.json["client_request_id"])
    assert submit.json["output_format"] == "jpg"
    assert len(conn.charges("images")) == 1
    # Subscribers of the Asset learn what arrived.
    (extra,) = asset_event_extras(dag_run, "phota://tests/generated")
    assert extra["output_uris"] == summary["output_uris"]
    assert extra["images"] == 2


RESULT_KEYS = {
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


def test_generate_in_the_worker_streams_the_signed_urls_to_storage(conn: PhotaEmulator, tmp_path: Path) -> None:
    """Without deferral the worker waits for the async job and streams each image (flat memory)."""
    dag_run = run_dag("op_generate_in_worker", out=str(tmp_path), count="3", aspect_ratio="9:16")

    summary = return_value(dag_run, "generate")
    assert set(summary) == RESULT_KEYS
    assert summary["images"] == 3
    assert summary["job_id"] in conn.jobs
    assert summary["request_id"].startswith("req_")
    assert summary["download_urls"] == []
    assert_images(summary["output_uris"], (576, 1024), "PNG")
    (request,) = conn.requests_to("/v1/phota/generate", "POST")
    assert request.json["response_mode"] == "urls"
    assert request.json["async"] is True
    assert request.json["num_output_images"] == 3  # rendered from a template, sent as a number
    assert len(conn.downloads) == 3
    assert_small_xcom(dag_run)


def test_without_output_path_returns_signed_urls_only(conn: PhotaEmulator) -> None:
    dag_run = run_dag("op_generate_urls_only")

    summary = return_value(dag_run, "generate")
    assert set(summary) == RESULT_KEYS
    assert summary["client_request_id"] == conn.jobs[summary["job_id"]].client_request_id
    assert summary["manifest_uri"] is None  # nowhere to write one
    assert summary["output_uris"] == []
    assert len(summary["download_urls"]) == 1
    assert "token=" in summary["download_urls"][0]
    assert not conn.downloads


def test_mapped_tasks_write_distinct_files(conn: PhotaEmulator, tmp_path: Path) -> None:
    dag_run = run_dag("op_generate_mapped", out=str(tmp_path))

    assert set(task_states(dag_run).values()) == {"success"}
    names = [p.name for p in image_files(tmp_path)]
    assert len(names) == len(set(names)) == 6
    assert {name.split("-")[1] for name in names} == {"map0", "map1", "map2"}
    keys = {request.json["client_request_id"] for request in conn.requests_to("/v1/phota/generate", "POST")}
    assert len(keys) == 3
    assert len(conn.charges("images")) == 3


def test_edit_reads_a_local_file_and_keeps_the_identity(
    conn: PhotaEmulator, ready_profile: str, tmp_path: Path
) -> None:
    photo = write_png(tmp_path / "photo.png", (800, 600))
    dag_run = run_dag("op_edit", out=str(tmp_path / "out"), image=str(photo), profile_id=ready_profile)

    summary = return_value(dag_run, "edit")
    assert summary["known_subjects"] == {ready_profile: 2}
    assert_images(summary["output_uris"], (4096, 4096), "JPEG")
    (request,) = conn.requests_to("/v1/phota/edit", "POST")
    assert not request.json["images"][0].startswith("/")  # the file was sent as base64, not as a path
    assert request.json["profile_ids"] == [ready_profile]


def test_enhance_reads_a_storage_uri_and_keeps_the_input_ratio(
    conn: PhotaEmulator, ready_profile: str, tmp_path: Path
) -> None:
    photo = write_png(tmp_path / "photo.png", (1200, 800))
    dag_run = run_dag("op_enhance", out=str(tmp_path / "out"), image=f"file://{photo}", profile_id=ready_profile)

    summary = return_value(dag_run, "enhance")
    assert_images(summary["output_uris"], (2048, 1365), "PNG")
    assert summary["known_subjects"] == {ready_profile: 1}


def test_remix_follows_the_input_aspect_ratio(conn: PhotaEmulator, tmp_path: Path) -> None:
    content = write_png(tmp_path / "content.png", (600, 800))
    style = write_png(tmp_path / "style.png", (500, 500))
    dag_run = run_dag("op_remix", out=str(tmp_path / "out"), image=str(content), reference=str(style))

    summary = return_value(dag_run, "remix")
    assert_images(summary["output_uris"], (1536, 2048), "JPEG")


def test_retried_async_task_gets_its_original_job_and_one_charge(conn: PhotaEmulator, tmp_path: Path) -> None:
    # The first try submits, then loses the download to a run of server errors longer than the hook's retries, and
    # fails; Airflow retries the task, which finds its job in the manifest and collects it without a new submit.
    conn.inject_fault("/cdn/*", status=500, count=MAX_ATTEMPTS)
    dag_run = run_dag("op_generate_retry", out=str(tmp_path))

    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run) == {"generate": 2}
    assert len(conn.requests_to("/v1/phota/generate", "POST")) == 1
    assert len(conn.jobs) == 1
    assert len(conn.charges("images")) == 1
    assert len(image_files(tmp_path)) == 1


def test_invalid_arguments_fail_before_any_request_and_without_retries(conn: PhotaEmulator, tmp_path: Path) -> None:
    dag_run = run_dag("op_invalid", out=str(tmp_path))

    assert task_states(dag_run) == {"generate": "failed"}
    assert try_numbers(dag_run) == {"generate": 1}  # retries=3, but no retry can fix a bad argument
    assert conn.requests == []


class _TI:
    def __init__(self, run_id: str = "manual__1", map_index: int = -1, task_id: str = "gen") -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "dag", run_id, task_id, map_index


def test_client_request_id_is_stable_per_run_task_map_index_and_request() -> None:
    body = {"prompt": "a cat"}
    key = stable_client_request_id({"ti": _TI()}, "generate", body)  # type: ignore[typeddict-item]

    assert key == stable_client_request_id({"ti": _TI()}, "generate", dict(body))  # type: ignore[typeddict-item]
    assert CLIENT_REQUEST_ID_PATTERN.fullmatch(key)
    others = [
        stable_client_request_id({"ti": _TI(run_id="manual__2")}, "generate", body),  # type: ignore[typeddict-item]
        stable_client_request_id({"ti": _TI(map_index=3)}, "generate", body),  # type: ignore[typeddict-item]
        stable_client_request_id({"ti": _TI()}, "edit", body),  # type: ignore[typeddict-item]
        stable_client_request_id({"ti": _TI()}, "generate", {"prompt": "a dog"}),  # type: ignore[typeddict-item]
    ]
    assert len({key, *others}) == 5
    long_task = stable_client_request_id({"ti": _TI(task_id="t" * 300 + "+/ é")}, "generate", body)  # type: ignore[typeddict-item]
    assert CLIENT_REQUEST_ID_PATTERN.fullmatch(long_task)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("https://example.com/a.jpg", "url"),
        ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk", "base64"),
        ("file:///bucket/key.png", "path"),
        ("/definitely/not/here.png", "path"),
    ],
)
def test_image_references_are_classified(value: str, kind: str) -> None:
    result = classify_image("image", value)
    assert not isinstance(result, Violation)
    assert result[0] == kind


@pytest.mark.parametrize("value", ["", "   ", 42, None, "not an image", "http://", "nope://x"])
def test_bad_image_references_name_the_field(value: Any) -> None:
    result = classify_image("images[0]", value)
    assert isinstance(result, Violation)
    assert result.field == "images[0]"
    assert result.allowed


def test_worker_wait_that_times_out_fails_the_try_and_names_the_same_job(
    held_clock_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker waits with the hook's ``wait_for_jobs`` (the one polling loop) for at most ``timeout`` in all;
    then the try fails, and a retry resubmits the same key and waits for the same job."""
    from airflow_provider_phota._compat import AirflowException, AirflowFailException
    from airflow_provider_phota.hooks.phota import PhotaHook
    from airflow_provider_phota.operators.images import PhotaGenerateOperator

    emu = held_clock_emulator  # the job stays QUEUED unless the test moves the clock: here it never does
    waits: list[tuple[list[str], dict[str, Any]]] = []
    hook_wait = PhotaHook.wait_for_jobs

    def recorded_wait(hook: PhotaHook, job_ids: list[str], **kwargs: Any) -> Any:
        waits.append((job_ids, kwargs))
        return hook_wait(hook, job_ids, **kwargs)

    monkeypatch.setattr(PhotaHook, "wait_for_jobs", recorded_wait)
    operator = PhotaGenerateOperator(
        task_id="wait",
        prompt="a slow lighthouse",
        deferrable=False,
        poll_interval=0.05,
        timeout=0.3,
        client_request_id="worker-wait-1",
    )

    with pytest.raises(AirflowException) as raised:
        operator.execute({"ti": _TI(task_id="wait")})  # type: ignore[arg-type]

    (job_id,) = emu.jobs
    ((waited, kwargs),) = waits
    assert waited == [job_id]
    assert kwargs["poll_interval"] == 0.05
    assert 0 < kwargs["timeout"] <= 0.3
    assert not isinstance(raised.value, AirflowFailException)  # a retry may help
    message = str(raised.value)
    assert "1 Phota job(s) are not finished (timeout after 0.3 s)" in message
    assert message.endswith("a retry resumes waiting for the same jobs")
    assert len(emu.requests_to("/v1/phota/generate", "POST")) == 1
    assert len(emu.requests_to(f"/v1/phota/jobs/{job_id}", "GET")) >= 3  # the polls, then the final look
