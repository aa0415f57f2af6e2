"""PhotaBatchOperator against the emulator: whole campaigns in real Airflow tasks (dag.test()) and direct runs, with
the ledger as the judge of "paid once per row"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagrun_support import asset_event_extras, return_value, run_dag, task_states, xcom_rows
from PIL import Image

from airflow_provider_phota import results
from airflow_provider_phota._compat import AirflowFailException
from airflow_provider_phota.engine.runner import PER_KEY_XCOM
from airflow_provider_phota.operators.batch import PhotaBatchOperator
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.emulator import MARKER_MODERATE

pytestmark = pytest.mark.usefixtures("airflow_db")
RESULT_KEYS = set(results.BatchOperatorResult.__annotations__)
SUBMIT_GLOB = "/v1/phota/generate"


@pytest.fixture(autouse=True)
def _capture_at_fd_level(capfd: pytest.CaptureFixture[str]) -> None:
    """Airflow's task logging keeps the output stream it is first configured with. Configured during one of this
    module's direct ``execute()`` runs under pytest's default capture, later tests of the session that read task logs
    through ``capfd`` (tests/reliability) saw none; capturing at the fd level here keeps them working."""


@pytest.fixture
def conn(phota_emulator: PhotaEmulator, phota_connection: Callable[..., str]) -> PhotaEmulator:
    phota_connection(retry_wait=0.01, retry_max_wait=0.05, max_attempts=3)
    return phota_emulator


def context(task_id: str = "render", run_id: str = "manual__batch") -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="batch", run_id=run_id, task_id=task_id, map_index=-1, try_number=1)
    return {"ti": ti, "task_instance": ti, "outlet_events": {}}


def rows(count: int, *, moderated: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """``count`` cheap /generate rows (1K squares); the 1-based rows in ``moderated`` fail moderation."""
    return [
        {
            "prompt": f"poster {n} {MARKER_MODERATE if n in moderated else ''}".strip(),
            "aspect_ratio": "1:1",
            "resolution": "1K",
        }
        for n in range(1, count + 1)
    ]


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.jpg") if not p.name.startswith("."))


def manifest_of(folder: Path, task_id: str = "render") -> dict[str, Any]:
    return json.loads((folder / f"{task_id}-manifest.json").read_text())


def image_charges(emulator: PhotaEmulator) -> dict[str, float]:
    """Net charge per job (a FAILED job's refund cancels its charge)."""
    net: dict[str, float] = {}
    for charge in emulator.ledger:
        if charge.kind in ("images", "refund"):
            net[charge.ref] = round(net.get(charge.ref, 0.0) + charge.amount_usd, 6)
    return {ref: amount for ref, amount in net.items() if amount}


# --- in real Airflow tasks -------------------------------------------------------------------------------------------


def test_a_campaign_file_renders_in_one_task_with_one_asset_event(conn: PhotaEmulator, tmp_path: Path) -> None:
    from airflow_provider_phota.hooks.phota import PhotaHook

    profile_id = PhotaHook().create_profile([f"https://example.com/b/{i}.jpg" for i in range(10)], tag="brand-face")
    conn.advance(conn.training_seconds + 1)
    campaign = tmp_path / "campaign.csv"
    campaign.write_text(
        "profile_tag,prompt,aspect_ratio,resolution,count\n"
        "brand-face,{subject} holding our new mug,1:1,1K,2\n"
        "brand-face,Billboard of a city street,16:9,2K,1\n"
    )
    out = tmp_path / "out"

    dag_run = run_dag("op_batch_file", out=str(out), campaign=str(campaign))

    assert task_states(dag_run) == {"render": "success"}
    summary = return_value(dag_run, "render")
    assert set(summary) == RESULT_KEYS
    assert summary == {
        "endpoint": "generate",
        "manifest_uri": f"file://{out}/render-manifest.json",
        "rows": 2,
        "succeeded": 2,
        "failed": 0,
        "images": 3,
        "cost_usd": None,  # no price table on this connection: /generate's rates are not published
        "cost_basis": "unknown: 2 of 2 request(s) have no rate ('nb2/1K' first)",
    }
    manifest = manifest_of(out)
    assert manifest["complete"] is True
    assert manifest["counts"]["succeeded"] == 2
    assert manifest["profiles"] == {"brand-face": profile_id}
    assert manifest["known_subjects"] == {profile_id: 3}
    first, second = manifest["rows"]
    assert first["request"]["prompt"] == f"[[{profile_id}]] holding our new mug"
    assert second["request"]["prompt"] == f"Billboard of a city street, featuring [[{profile_id}]]"
    assert (first["row"], first["count"], second["count"]) == (1, 2, 1)
    for entry, size in ((first, (1024, 1024)), (second, (2048, 1152))):
        assert entry["status"] == "succeeded"
        assert entry["job_id"] in conn.jobs
        assert entry["known_subjects"] == {profile_id: entry["count"]}
        for uri in entry["output_uris"]:
            with Image.open(uri.removeprefix("file://")) as image:
                assert (image.size, image.format) == (size, "JPEG")
    assert [f"file://{p}" for p in images_in(out)] == sorted(first["output_uris"] + second["output_uris"])
    # XCom holds counts and the manifest URI only, each also under its own key (multiple_outputs, but for Airflow
    # 3.0, see PER_KEY_XCOM); the asset gets one event for the whole batch.
    keys = {key for _task, _map, key, _value in xcom_rows(dag_run) if key != "pipeline_outlets"}  # Airflow 2's own
    assert keys == {"return_value", *(summary if PER_KEY_XCOM else ())}
    assert asset_event_extras(dag_run, "phota://tests/batch") == [summary]
    assert len(conn.charges("images")) == 2


def test_requests_from_xcom_go_in_waves_of_max_in_flight(conn: PhotaEmulator, tmp_path: Path) -> None:
    dag_run = run_dag("op_batch_xcom", out=str(tmp_path), rows=5)

    assert task_states(dag_run) == {"campaign": "success", "render": "success"}
    assert return_value(dag_run, "render")["succeeded"] == 5
    # max_in_flight=2: a submit happens only while fewer than two jobs are unfinished.
    log = [r for r in conn.requests if r.path == SUBMIT_GLOB or r.path.startswith("/v1/phota/jobs/")]
    submitted: list[str] = []
    finished: set[str] = set()
    for request in log:
        if request.method == "POST":
            assert len([job for job in submitted if job not in finished]) < 2
            submitted.append(_job_of(conn, request.json["client_request_id"]))
        elif conn.jobs[request.path.rsplit("/", 1)[-1]].status == "SUCCEEDED" and request.status == 200:
            finished.add(request.path.rsplit("/", 1)[-1])
    assert len(submitted) == 5
    assert len(images_in(tmp_path)) == 0  # png by default
    assert len(list(tmp_path.glob("render-row*.png"))) == 5


def _job_of(emulator: PhotaEmulator, key: str) -> str:
    (job_id,) = [job_id for job_id, job in emulator.jobs.items() if job.client_request_id == key]
    return job_id


def test_500_rows_are_500_charged_jobs(conn: PhotaEmulator, tmp_path: Path) -> None:
    campaign = tmp_path / "campaign.json"
    campaign.write_text(json.dumps(rows(500)))
    out = tmp_path / "out"

    dag_run = run_dag("op_batch_file", out=str(out), campaign=str(campaign))

    assert task_states(dag_run) == {"render": "success"}
    assert return_value(dag_run, "render")["images"] == 500
    assert len(image_charges(conn)) == 500
    assert len(conn.jobs) == 500
    assert len(conn.requests_to(SUBMIT_GLOB, "POST")) == 500
    assert len(images_in(out)) == 500
    assert len(conn.downloads) == 500
    keys = {job.client_request_id for job in conn.jobs.values()}
    assert len(keys) == 500


# --- crash and retry safety -------------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys
    from types import SimpleNamespace
    from airflow_provider_phota.operators.batch import PhotaBatchOperator

    ti = SimpleNamespace(dag_id="batch", run_id="manual__batch", task_id="render", map_index=-1, try_number=1)
    operator = PhotaBatchOperator(
        task_id="render", endpoint="generate", requests=sys.argv[1], output_path=sys.argv[2], output_format="jpg",
        deferrable=False, poll_interval=0.05, timeout=600,
    )
    operator.execute({"ti": ti, "task_instance": ti, "outlet_events": {}})
    """
)


@pytest.fixture
def clock_mover(held_clock_emulator: PhotaEmulator) -> Iterator[Callable[[bool], None]]:
    """While switched on, moves the held clock past the end of the jobs submitted since it last moved (checked every
    50 ms). Only then: every move ages the signed download URLs too, and they expire after 24 hours."""
    running = threading.Event()
    stop = threading.Event()
    emu = held_clock_emulator

    def move() -> None:
        moved_for = 0
        while not stop.wait(0.05):
            if running.is_set() and len(emu.jobs) > moved_for:
                moved_for = len(emu.jobs)
                emu.advance(emu.job_seconds + 1)

    thread = threading.Thread(target=move, daemon=True)
    thread.start()
    yield lambda on: running.set() if on else running.clear()
    stop.set()
    thread.join()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_task_killed_mid_run_and_retried_still_pays_500_jobs(
    held_clock_emulator: PhotaEmulator, clock_mover: Callable[[bool], None], tmp_path: Path
) -> None:
    emu = held_clock_emulator
    campaign = tmp_path / "campaign.json"
    campaign.write_text(json.dumps(rows(500)))
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(campaign), str(out)], env=dict(os.environ), stdout=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: len(emu.jobs) >= 100)  # the first wave is submitted and waits: the clock is held
        clock_mover(True)  # wave 1 finishes, is written, and wave 2 is submitted
        wait_until(lambda: len(emu.jobs) >= 200)
        clock_mover(False)
        os.kill(child.pid, signal.SIGKILL)  # no cleanup, no last manifest write
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    written_before = len(images_in(out))
    assert written_before >= 100
    downloads_before = len(emu.downloads)

    clock_mover(True)
    operator = PhotaBatchOperator(
        task_id="render",
        endpoint="generate",
        requests=str(campaign),
        output_path=str(out),
        output_format="jpg",
        deferrable=False,
        poll_interval=0.05,
    )
    summary = operator.execute(context())

    assert summary["succeeded"] == 500
    assert len(image_charges(emu)) == 500  # the ledger: one charged job per row, the kill cost nothing
    assert len(emu.jobs) == 500
    assert len(images_in(out)) == 500
    # What the first try had written was not downloaded again.
    assert len(emu.downloads) - downloads_before == 500 - written_before


def test_a_retry_after_the_batch_resubmits_and_downloads_nothing(conn: PhotaEmulator, tmp_path: Path) -> None:
    def run() -> Any:
        return PhotaBatchOperator(
            task_id="render", endpoint="generate", requests=rows(5), output_path=str(tmp_path), poll_interval=0.05
        ).execute(context())

    first = run()
    requests_before, downloads_before = len(conn.requests), len(conn.downloads)
    second = run()

    assert first == second
    assert len(conn.requests) == requests_before  # the manifest says every row is done and written
    assert len(conn.downloads) == downloads_before


def test_a_retry_downloads_only_the_outputs_that_went_missing(conn: PhotaEmulator, tmp_path: Path) -> None:
    def run() -> Any:
        return PhotaBatchOperator(
            task_id="render", endpoint="generate", requests=rows(3), output_path=str(tmp_path), poll_interval=0.05
        ).execute(context())

    run()
    (lost, *_kept) = sorted(tmp_path.glob("render-row*.png"))
    lost.unlink()
    downloads_before = len(conn.downloads)

    run()

    assert len(conn.downloads) - downloads_before == 1
    assert lost.exists()
    assert conn.requests_to(SUBMIT_GLOB) == conn.requests_to(SUBMIT_GLOB)[:3]  # no new submit
    assert len(conn.jobs) == 3


def test_a_failed_job_is_replaced_under_a_derived_key(conn: PhotaEmulator, tmp_path: Path) -> None:
    from airflow_provider_phota.engine.requests import derived_client_request_id

    conn.fail_next_jobs(1)
    summary = PhotaBatchOperator(
        task_id="render", endpoint="generate", requests=rows(3), output_path=str(tmp_path), poll_interval=0.05
    ).execute(context())

    assert summary["succeeded"] == 3
    assert len(conn.jobs) == 4
    assert len(image_charges(conn)) == 3  # the FAILED job was refunded
    failed_entry = next(entry for entry in manifest_of(tmp_path)["rows"] if entry["failed_jobs"])
    (failed,) = failed_entry["failed_jobs"]
    assert conn.jobs[failed["job_id"]].status == "FAILED"
    first_key = conn.jobs[failed["job_id"]].client_request_id
    assert failed_entry["client_request_id"] == derived_client_request_id(first_key, failed["job_id"])


def test_a_wave_that_times_out_fails_the_try_and_the_retry_resumes_the_same_jobs(
    held_clock_emulator: PhotaEmulator, tmp_path: Path
) -> None:
    from airflow_provider_phota._compat import AirflowException, TaskDeferred
    from airflow_provider_phota.triggers.batch import PhotaBatchTrigger

    emu = held_clock_emulator

    def operator() -> PhotaBatchOperator:
        return PhotaBatchOperator(
            task_id="render",
            endpoint="generate",
            requests=rows(3),
            output_path=str(tmp_path),
            deferrable=True,
            max_in_flight=2,
            poll_interval=0.05,
        )

    with pytest.raises(TaskDeferred) as deferred:
        operator().execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, PhotaBatchTrigger)
    assert sorted(trigger.job_ids) == sorted(emu.jobs)
    assert len(trigger.job_ids) == 2  # the first wave
    assert trigger.progress == {"rows": 3, "succeeded": 0, "failed": 0, "pending": 1}

    event = {"status": "timeout", "jobs": 2, "counts": {"QUEUED": 2}, "message": "2 of 2 jobs still not finished"}
    with pytest.raises(AirflowException, match=r"2 Phota job\(s\) are not finished .* a retry resumes") as raised:
        operator().execute_complete(context(), event)
    assert not isinstance(raised.value, AirflowFailException)  # Airflow may retry

    emu.advance(emu.job_seconds + 1)  # the retry: the first wave has finished meanwhile
    with pytest.raises(TaskDeferred) as deferred:
        operator().execute(context())
    (third,) = deferred.value.trigger.job_ids
    assert third not in trigger.job_ids
    emu.advance(emu.job_seconds + 1)
    summary = operator().execute_complete(context(), {"status": "success", "jobs": 1, "counts": {}, "message": ""})

    assert (summary["succeeded"], summary["images"]) == (3, 3)
    assert len(emu.jobs) == 3
    assert len(image_charges(emu)) == 3


def test_rate_limited_submits_wait_for_retry_after(conn: PhotaEmulator, tmp_path: Path) -> None:
    conn.inject_fault(SUBMIT_GLOB, status=429, retry_after=0, count=2)  # the policy allows 3 attempts

    summary = PhotaBatchOperator(
        task_id="render", endpoint="generate", requests=rows(3), output_path=str(tmp_path), poll_interval=0.05
    ).execute(context())

    assert summary["succeeded"] == 3
    assert [r.status for r in conn.requests_to(SUBMIT_GLOB, "POST")] == [429, 429, 202, 202, 202]
    assert len(image_charges(conn)) == 3


def test_a_rate_limit_that_outlasts_the_retries_ends_the_wave_and_the_next_wave_goes_on(
    conn: PhotaEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_phota.hooks.phota import PhotaHook

    original = PhotaHook.submit_job
    calls = []

    def submit(hook: PhotaHook, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["client_request_id"])
        if len(calls) == 3:  # the third submit of the first wave meets a 429 that outlasts the hook's 3 attempts
            conn.inject_fault(SUBMIT_GLOB, status=429, retry_after=0, count=3)
        return original(hook, *args, **kwargs)

    monkeypatch.setattr(PhotaHook, "submit_job", submit)
    summary = PhotaBatchOperator(
        task_id="render", endpoint="generate", requests=rows(5), output_path=str(tmp_path), poll_interval=0.05
    ).execute(context())

    assert summary["succeeded"] == 5
    statuses = [r.status for r in conn.requests_to(SUBMIT_GLOB, "POST")]
    assert statuses == [202, 202, 429, 429, 429, 202, 202, 202]  # two jobs, the wave ends, the rest next wave
    assert len(image_charges(conn)) == 5


# --- partial failure ------------------------------------------------------------------------------------------------


def test_three_moderated_rows_fail_the_task_after_the_other_497_are_written(
    conn: PhotaEmulator, tmp_path: Path
) -> None:
    moderated = frozenset({7, 250, 499})
    operator = PhotaBatchOperator(
        task_id="render",
        endpoint="generate",
        requests=rows(500, moderated=moderated),
        output_path=str(tmp_path),
        output_format="jpg",
        poll_interval=0.05,
    )

    with pytest.raises(AirflowFailException) as raised:
        operator.execute(context())

    message = str(raised.value)
    assert message.startswith("3 of 500 rows failed (max_failed_rows=0)")
    listed = [int(part.split(":")[0]) for part in message.split("Failed rows: ")[1].split("row ")[1:]]
    assert listed == sorted(moderated)
    assert message.count("CONTENT_MODERATION") == 3
    assert len(images_in(tmp_path)) == 497
    manifest = manifest_of(tmp_path)
    assert manifest["complete"] is True
    assert {entry["row"] for entry in manifest["rows"] if entry["status"] == "failed"} == moderated
    assert manifest["counts"] | {"images": 497} == manifest["counts"]
    assert len(image_charges(conn)) == 497  # moderated jobs are refunded


def test_max_failed_rows_lets_the_batch_succeed_with_the_failures_listed(conn: PhotaEmulator, tmp_path: Path) -> None:
    summary = PhotaBatchOperator(
        task_id="render",
        endpoint="generate",
        requests=rows(4, moderated=frozenset({2})),
        output_path=str(tmp_path),
        max_failed_rows=1,
        poll_interval=0.05,
    ).execute(context())

    assert (summary["succeeded"], summary["failed"], summary["images"]) == (3, 1, 3)
    (failed,) = [entry for entry in manifest_of(tmp_path)["rows"] if entry["status"] == "failed"]
    assert failed["row"] == 2
    assert failed["error"]["type"] == "CONTENT_MODERATION"


# --- validation before anything is paid -----------------------------------------------------------------------------


def test_every_row_is_checked_before_the_first_submit(conn: PhotaEmulator, tmp_path: Path) -> None:
    bad = [
        {"prompt": "fine", "aspect_ratio": "1:1"},
        {"prompt": "a fox", "aspect_ratio": "2:1"},
        {"aspect_ratio": "1:1"},
        {"prompt": "x", "resolution": "4K", "base_model": "flux-2"},
        {"prompt": "y", "client_request_id": "mine"},
        "not a row",
    ]
    operator = PhotaBatchOperator(task_id="render", endpoint="generate", requests=bad, output_path=str(tmp_path))

    with pytest.raises(AirflowFailException) as raised:
        operator.execute(context())

    message = str(raised.value)
    assert message.startswith("Invalid PhotaBatchOperator arguments: ")
    for expected in (
        "row 2 aspect_ratio: '2:1' is not a valid value",
        "row 3 prompt: is required",
        "row 4 resolution: '4K' is not supported by base_model 'flux-2'",
        # a column no row may set is named once, with the rows it is in, not once per row
        "column 'client_request_id': is set by the batch operator, not by a row (1 of 5 rows, first row 5)",
        "row 6: must be an object, got str",
    ):
        assert expected in message
    assert "row 1 " not in message
    assert conn.requests == []
    assert not list(tmp_path.iterdir())


def test_input_files_of_rows_are_checked_like_the_image_operators(conn: PhotaEmulator, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    requests = [
        {"prompt": "restyle", "images": [str(tmp_path / "missing.png")]},
        {"prompt": "restyle", "images": str(tmp_path / "notes.txt")},
    ]
    operator = PhotaBatchOperator(task_id="render", endpoint="edit", requests=requests, output_path=str(tmp_path))

    with pytest.raises(AirflowFailException) as raised:
        operator.execute(context())

    assert "row 1 images[0]:" in str(raised.value)
    assert "does not exist" in str(raised.value)
    assert "row 2 images[0]:" in str(raised.value)
    assert "is not an image" in str(raised.value)
    assert conn.requests == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"endpoint": "upscale"}, "endpoint: 'upscale' is not a studio endpoint"),
        ({"max_in_flight": 0}, "max_in_flight: 0 is out of range"),
        ({"max_failed_rows": -1}, "max_failed_rows: -1 is out of range"),
        ({"requests": "campaign.xlsx"}, "requests: 'campaign.xlsx' is not a .csv, .json or .jsonl file"),
        ({"requests": []}, "requests: has no rows"),
        ({"requests": [{"prompt": "a", "profile_tag": "nobody"}]}, "row 1 profile_tag: no READY profile"),
    ],
)
def test_bad_arguments_name_the_field(
    conn: PhotaEmulator, tmp_path: Path, arguments: dict[str, Any], expected: str
) -> None:
    settings = {"endpoint": "generate", "requests": rows(1), "output_path": str(tmp_path), **arguments}
    operator = PhotaBatchOperator(task_id="render", **settings)

    with pytest.raises(AirflowFailException, match="Invalid PhotaBatchOperator arguments") as raised:
        operator.execute(context())

    assert expected in str(raised.value)
    assert conn.requests_to(SUBMIT_GLOB) == []
