"""Profile operators in real Airflow tasks (dag.test()) against the emulator: reuse, retries, delete."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from dagrun_support import return_value, run_dag, task_states, try_numbers

from airflow_provider_phota.engine.common import parse_list_argument
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator

pytestmark = pytest.mark.usefixtures("airflow_db")
MAX_ATTEMPTS = 3
FAST_URLS = [f"https://example.com/subject/{i}.jpg" for i in range(5)]
STANDARD_URLS = [f"https://example.com/subject/{i}.jpg" for i in range(12)]


@pytest.fixture
def conn(phota_emulator: PhotaEmulator, phota_connection: Callable[..., str]) -> PhotaEmulator:
    """The emulator behind ``phota_default``, with fast retries so fault tests take milliseconds."""
    phota_connection(retry_wait=0.01, retry_max_wait=0.05, max_attempts=MAX_ATTEMPTS)
    return phota_emulator


def test_create_profile_defers_until_ready_and_returns_the_id(conn: PhotaEmulator) -> None:
    dag_run = run_dag("op_create_profile", urls=FAST_URLS, tag="subject-a")

    assert task_states(dag_run) == {"create": "success"}
    result = return_value(dag_run, "create")
    profile_id = result["profile_id"]
    assert result == {
        "profile_id": profile_id,
        "status": "READY",
        "message": "",
        "tag": "subject-a",
        "training_tier": "fast",
        "reused": False,
        "cost_usd": 1.49,
        "cost_basis": "1 profile x $1.49 (fast training)",
    }
    assert conn.profile_status(profile_id) == "READY"
    assert conn.profiles[profile_id].tag == "subject-a"
    assert conn.profiles[profile_id].tier == "fast"
    assert len(conn.charges("profile")) == 1
    # The wait ran on the (inline) triggerer: status polls happened after the task deferred.
    assert conn.requests_to("/v1/phota/profiles/*/status", "GET")


def test_create_profile_reuses_a_training_profile_with_the_same_tag(conn: PhotaEmulator) -> None:
    existing = PhotaHook().create_profile(FAST_URLS, tag="subject-b", training_tier="fast")
    dag_run = run_dag("op_create_profile", urls=FAST_URLS, tag="subject-b")

    # (``reused`` comes back through the deferral's kwargs, which dag.test() of Airflow 3.3 drops on resume:
    # tests/sensors checks it on the resume path the triggerer takes.)
    assert return_value(dag_run, "create")["profile_id"] == existing
    assert len(conn.requests_to("/v1/phota/profiles/add", "POST")) == 1  # only the one made above
    assert len(conn.charges("profile")) == 1


def test_create_profile_does_not_reuse_a_failed_profile(conn: PhotaEmulator) -> None:
    failed = PhotaHook().create_profile(FAST_URLS, tag="subject-c", training_tier="fast")
    conn.set_profile_outcome(failed, "ERROR", "No detectable subject")
    dag_run = run_dag("op_create_profile", urls=FAST_URLS, tag="subject-c")

    fresh = return_value(dag_run, "create")["profile_id"]
    assert fresh != failed
    assert conn.profile_status(fresh) == "READY"
    assert len(conn.charges("profile")) == 2


def test_retried_create_task_trains_one_profile(conn: PhotaEmulator) -> None:
    # The first try creates the profile, then its wait loses the status endpoint to more server errors than the
    # hook retries, and fails. Airflow's retry finds the profile by its tag instead of training another.
    conn.inject_fault("/v1/phota/profiles/*/status", status=500, count=MAX_ATTEMPTS)
    dag_run = run_dag("op_create_profile_retry", urls=STANDARD_URLS, tag="subject-d")

    assert task_states(dag_run) == {"create": "success"}
    assert try_numbers(dag_run) == {"create": 2}
    assert len(conn.requests_to("/v1/phota/profiles/add", "POST")) == 1
    assert list(conn.profiles) == [return_value(dag_run, "create")["profile_id"]]
    assert len(conn.charges("profile")) == 1


def test_ambiguous_create_failure_is_recovered_by_tag(conn: PhotaEmulator) -> None:
    # The service creates the profile but the answer is lost (500 after processing): the hook looks the tag up
    # before resending, so there is still one profile.
    conn.inject_fault("/v1/phota/profiles/add", status=500, after=True)
    dag_run = run_dag("op_create_profile", urls=FAST_URLS, tag="subject-e")

    assert task_states(dag_run) == {"create": "success"}
    assert len(conn.profiles) == 1
    assert len(conn.charges("profile")) == 1


def test_profile_deleted_during_the_deferred_wait_fails_without_retries_or_a_second_training(
    conn: PhotaEmulator,
) -> None:
    """The trigger sees a 404: the task fails at once (retries=2), instead of a retry training a new profile."""

    def delete_once_checked() -> None:
        deadline = time.monotonic() + 120
        while not conn.requests_to("/v1/phota/profiles/*/status", "GET") and time.monotonic() < deadline:
            time.sleep(0.01)
        with PhotaHook() as hook:
            hook.delete_profile(next(iter(conn.profiles)))

    watcher = threading.Thread(target=delete_once_checked, daemon=True)
    watcher.start()
    dag_run = run_dag("op_create_profile_wait_retries", urls=FAST_URLS, tag="subject-g")
    watcher.join(timeout=5)

    assert task_states(dag_run) == {"create": "failed"}
    assert try_numbers(dag_run) == {"create": 1}
    assert len(conn.requests_to("/v1/phota/profiles/add", "POST")) == 1
    assert len(conn.charges("profile")) == 1
    assert conn.profiles == {}


def test_invalid_training_set_fails_before_any_request(conn: PhotaEmulator) -> None:
    dag_run = run_dag("op_create_profile_retry", urls=FAST_URLS[:3], tag="subject-f")

    assert task_states(dag_run) == {"create": "failed"}
    assert try_numbers(dag_run) == {"create": 1}
    assert conn.requests == []


def test_delete_profile_then_delete_again_is_a_success(conn: PhotaEmulator) -> None:
    profile_id = PhotaHook().create_profile(FAST_URLS, training_tier="fast")

    first = run_dag("op_delete_profile", profile_id=profile_id)
    second = run_dag("op_delete_profile", profile_id=profile_id)

    assert return_value(first, "delete") == {"profile_id": profile_id, "deleted": True}
    assert profile_id not in conn.profiles
    assert task_states(second) == {"delete": "success"}
    assert return_value(second, "delete") == {"profile_id": profile_id, "deleted": False}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["a", "b"], ["a", "b"]),
        ("['https://x/1.jpg', 'https://x/2.jpg']", ["https://x/1.jpg", "https://x/2.jpg"]),
        ('["https://x/1.jpg"]', ["https://x/1.jpg"]),
        ("https://x/1.jpg\nhttps://x/2.jpg", ["https://x/1.jpg", "https://x/2.jpg"]),
        ("https://x/1.jpg, https://x/2.jpg", ["https://x/1.jpg", "https://x/2.jpg"]),
    ],
)
def test_rendered_url_lists_are_parsed(value: object, expected: list[str]) -> None:
    assert parse_list_argument(value) == expected


@pytest.mark.parametrize("existing", [False, True], ids=["create", "reuse"])
def test_reusing_create_lists_the_tag_once(conn: PhotaEmulator, existing: bool) -> None:
    """The ids of the reuse check also serve the create's duplicate check: one ``GET /profiles/ids``."""
    if existing:
        PhotaHook().create_profile(FAST_URLS, tag="subject-h", training_tier="fast")
    before = len(conn.requests_to("/v1/phota/profiles/ids", "GET"))

    dag_run = run_dag("op_create_profile", urls=FAST_URLS, tag="subject-h")

    assert task_states(dag_run) == {"create": "success"}
    listings = conn.requests_to("/v1/phota/profiles/ids", "GET")[before:]
    assert [entry.query for entry in listings] == [{"tag": "subject-h"}]
    assert len(conn.charges("profile")) == 1
