"""Retries that come after the service forgot the key, on the emulator's ledger.

The DAG runs (tests/dags/operators_durable.py) use Airflow's own task state store: on Airflow 3.3 a retry 25
emulated hours after the submit reconnects to its job by id and pays nothing more, with or without ``output_path``,
and ``max_cost_usd`` counts what every try committed. Below 3.3 the manifest under ``output_path`` is the only
memory, as docs/retries.md says. The direct ``execute`` tests give the engine a store as Airflow's accessor behaves
(``get``/``set`` of JSON values), so they run on every Airflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from airflow_versions import AIRFLOW_VERSION
from dagrun_support import return_value, run_dag, task_states, try_numbers
from packaging.version import Version
from task_state_support import JsonStore

from airflow_provider_phota import _compat, metrics
from airflow_provider_phota._compat import AirflowException, AirflowFailException
from airflow_provider_phota.contract import Endpoint
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.pricing import estimate_worst_case
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.emulator import EMULATOR_MODEL_RATES

pytestmark = pytest.mark.usefixtures("airflow_db")
TASK_STATE_STORE = Version("3.3") <= AIRFLOW_VERSION
A_DAY_AND_AN_HOUR = 25 * 3600
PROMPT = "a lighthouse at dawn"


@pytest.fixture
def emulator(held_clock_emulator: PhotaEmulator, phota_connection: Any) -> PhotaEmulator:
    """An emulator whose jobs finish only when its clock is moved, with its rates as the connection's price table
    (every worst case is known, so ``max_cost_usd`` can be tested)."""
    phota_connection(
        emulator=held_clock_emulator, price_table=EMULATOR_MODEL_RATES, retry_wait=0.01, retry_max_wait=0.05
    )
    return held_clock_emulator


def generate_posts(emulator: PhotaEmulator) -> list[Any]:
    return emulator.requests_to("/v1/phota/generate", "POST")


def test_a_retry_a_day_later_with_output_path_pays_once(emulator: PhotaEmulator, tmp_path: Path) -> None:
    run = run_dag("op_late_retry_files", out=str(tmp_path), emulator=emulator.base_url)

    assert task_states(run) == {"generate": "success"}
    assert try_numbers(run) == {"generate": 2}
    assert len(generate_posts(emulator)) == 1
    assert len(emulator.charges("images")) == 1
    (job_id,) = emulator.jobs
    assert return_value(run, "generate")["job_id"] == job_id
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".png"]


@pytest.mark.skipif(not TASK_STATE_STORE, reason="the task state store (AIP-103) is Airflow 3.3+")
def test_on_3_3_a_retry_a_day_later_without_output_path_reconnects_by_id_and_pays_once(
    emulator: PhotaEmulator, task_log: Any
) -> None:
    run = run_dag("op_late_retry_urls", emulator=emulator.base_url)

    assert task_states(run) == {"generate": "success"}
    assert try_numbers(run) == {"generate": 2}
    assert len(generate_posts(emulator)) == 1  # the service had forgotten the key: only the store remembered
    assert len(emulator.charges("images")) == 1
    (job_id,) = emulator.jobs
    result = return_value(run, "generate")
    assert result["job_id"] == job_id
    assert len(result["download_urls"]) == 1
    assert emulator.requests_to(f"/v1/phota/jobs/{job_id}", "GET")
    assert "1 jobs to collect (1 of them found by id in the task state store), 0 rows to submit" in task_log()


@pytest.mark.skipif(TASK_STATE_STORE, reason="below Airflow 3.3: no task state store")
def test_below_3_3_a_retry_a_day_later_without_output_path_pays_again(emulator: PhotaEmulator) -> None:
    """What docs/retries.md tells users of Airflow 3.2 and older: without ``output_path``, a retry after the
    service's 24 hours submits a new job."""
    run_dag("op_late_retry_urls", emulator=emulator.base_url)

    assert len(generate_posts(emulator)) == 2
    assert len(emulator.charges("images")) == 2


def test_a_limit_one_try_fits_but_two_would_cross_stops_the_second(emulator: PhotaEmulator, task_log: Any) -> None:
    worst = estimate_worst_case(Endpoint.GENERATE, {"prompt": PROMPT, "num_output_images": 1}, PhotaHook().prices)
    assert worst.usd is not None
    limit = worst.usd * 3 / 2  # one job fits, two do not
    run = run_dag("op_late_retry_new_request", emulator=emulator.base_url, max_cost_usd=str(limit))

    assert try_numbers(run) == {"generate": 2}
    if TASK_STATE_STORE:
        assert task_states(run) == {"generate": "failed"}
        assert len(generate_posts(emulator)) == 1  # the second try's new request was refused before any POST
        log = task_log()
        assert "committed by this task instance's tries so far + the worst case of the rest" in log
        assert "above max_cost_usd" in log
        assert len(emulator.charges("images")) == 1
    else:  # the first try's job is in no manifest: the second try sees only its own request
        assert len(generate_posts(emulator)) == 2


# --- the engine with a store, on every Airflow -------------------------------------------------------------------


def task_context(store: JsonStore, try_number: int) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="durable", run_id="manual__1", task_id="render", map_index=-1, try_number=try_number)
    return {"ti": ti, "task_instance": ti, "outlet_events": {}, "task_state_store": store}


class RecordingStats:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: dict[str, str] | None = None) -> None:
        self.calls.append((stat, count))


def operator(**arguments: Any) -> PhotaGenerateOperator:
    defaults = {"prompt": PROMPT, "deferrable": False, "poll_interval": 0.05, "timeout": 0.5}
    return PhotaGenerateOperator(task_id="render", **{**defaults, **arguments})


def test_a_clear_after_success_without_output_path_pays_and_counts_nothing_again(
    emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, stats = JsonStore(), RecordingStats()
    monkeypatch.setattr(_compat, "Stats", stats, raising=False)
    with pytest.raises(AirflowException, match="not finished"):
        operator().execute(task_context(store, 1))  # type: ignore[arg-type]
    emulator.advance(A_DAY_AND_AN_HOUR)
    first = operator().execute(task_context(store, 2))  # type: ignore[arg-type]
    counted = [call for call in stats.calls if call[0] == metrics.COST_USD_MICROS]
    assert len(counted) == 1

    again = operator().execute(task_context(store, 3))  # type: ignore[arg-type]  # the task cleared, run again

    assert len(generate_posts(emulator)) == 1
    assert len(emulator.charges("images")) == 1
    assert again["job_id"] == first["job_id"]
    assert again["cost_usd"] == first["cost_usd"] == emulator.charges("images")[0].amount_usd
    assert [call for call in stats.calls if call[0] == metrics.COST_USD_MICROS] == counted  # not counted twice
    from airflow_provider_phota.task_state import TaskJournal

    assert TaskJournal({"task_state_store": store}).committed_usd() == pytest.approx(first["cost_usd"])


def test_a_try_reads_the_store_once_and_writes_it_once_per_wave(emulator: PhotaEmulator) -> None:
    """One read of the chunk count when the try starts; after the wave that submits, the count and the chunk."""
    store = JsonStore()
    with pytest.raises(AirflowException):
        operator().execute(task_context(store, 1))  # type: ignore[arg-type]
    (job_id,) = emulator.jobs
    (entry,) = json.loads(store.values["phota_jobs:0"]).values()
    assert entry[0] == job_id
    assert store.calls == 3


def test_a_retry_whose_new_request_would_cross_the_limit_is_refused_before_any_post(
    emulator: PhotaEmulator,
) -> None:
    store = JsonStore()
    worst = estimate_worst_case(Endpoint.GENERATE, {"prompt": PROMPT, "num_output_images": 1}, PhotaHook().prices)
    assert worst.usd is not None
    limit = str(worst.usd * 3 / 2)
    with pytest.raises(AirflowException, match="not finished"):
        operator(max_cost_usd=limit).execute(task_context(store, 1))  # type: ignore[arg-type]

    with pytest.raises(AirflowFailException) as refused:
        operator(max_cost_usd=limit, prompt=f"{PROMPT}, edited").execute(task_context(store, 2))  # type: ignore[arg-type]

    assert len(generate_posts(emulator)) == 1
    assert "committed by this task instance's tries so far" in str(refused.value)
    assert "nothing was sent" in str(refused.value)


def test_a_batch_whose_try_died_before_its_manifest_reconnects_every_row_by_id(
    emulator: PhotaEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest is written after each wave; a worker killed between a wave's submits and that write leaves jobs
    no manifest names. The task state store has each of them from the moment its submit returned."""
    from airflow_provider_phota.engine.runner import PhotaJobsOperator
    from airflow_provider_phota.operators.batch import PhotaBatchOperator

    store = JsonStore()
    rows = [{"prompt": f"a lighthouse, take {n}"} for n in range(3)]

    def batch() -> PhotaBatchOperator:
        return PhotaBatchOperator(
            task_id="render", endpoint="generate", requests=rows, output_path=str(tmp_path), max_in_flight=3,
            deferrable=False, poll_interval=0.05, timeout=5,
        )  # fmt: skip

    class WorkerKilled(BaseException):
        """What the task sees of a SIGKILL: nothing after it runs, not even ``finally``'s manifest write."""

    def killed(*args: Any, **kwargs: Any) -> None:
        raise WorkerKilled

    with monkeypatch.context() as patched:
        patched.setattr(PhotaJobsOperator, "_write_manifest", killed)
        with pytest.raises(WorkerKilled):
            batch().execute(task_context(store, 1))  # type: ignore[arg-type]
    assert len(generate_posts(emulator)) == 3
    assert not list(tmp_path.glob("*manifest.json"))
    emulator.advance(A_DAY_AND_AN_HOUR)

    result = batch().execute(task_context(store, 2))  # type: ignore[arg-type]

    assert len(generate_posts(emulator)) == 3  # the retry submitted nothing: every row was found by id
    assert len(emulator.charges("images")) == 3
    assert result["images"] == 3
    assert len([p for p in tmp_path.iterdir() if p.suffix == ".png"]) == 3


@pytest.fixture
def fast_emulator(phota_emulator: PhotaEmulator, phota_connection: Any) -> PhotaEmulator:
    """The session's emulator (jobs finish in a fraction of a second) with its rates as the price table."""
    phota_connection(price_table=EMULATOR_MODEL_RATES, retry_wait=0.01, retry_max_wait=0.05)
    return phota_emulator


def test_a_replacement_an_earlier_try_sent_is_reconnected_not_refused_by_the_limit(
    fast_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Try 1: the job FAILED, its replacement was sent (within the limit: 2 worst cases of 2.5), then the worker
    died. Try 2 finds both jobs by id: the replacement is paid already, so the limit has nothing new to refuse."""
    from airflow_provider_phota.hooks.phota import PhotaHook as Hook

    store = JsonStore()
    worst = estimate_worst_case(Endpoint.GENERATE, {"prompt": PROMPT, "num_output_images": 1}, PhotaHook().prices)
    assert worst.usd is not None
    limit = str(worst.usd * 5 / 2)
    fast_emulator.fail_next_jobs(1)
    waits = 0
    hook_wait = Hook.wait_for_jobs

    class WorkerKilled(BaseException):
        pass

    def wait_then_die(hook: Hook, job_ids: list[str], **kwargs: Any) -> Any:
        nonlocal waits
        waits += 1
        if waits == 2:  # the replacement was just submitted
            raise WorkerKilled
        return hook_wait(hook, job_ids, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(Hook, "wait_for_jobs", wait_then_die)
        with pytest.raises(WorkerKilled):
            operator(max_cost_usd=limit, timeout=10).execute(task_context(store, 1))  # type: ignore[arg-type]
    assert len(generate_posts(fast_emulator)) == 2

    result = operator(max_cost_usd=limit, timeout=10).execute(task_context(store, 2))  # type: ignore[arg-type]

    assert len(generate_posts(fast_emulator)) == 2
    assert result["job_id"] == list(fast_emulator.jobs)[1]
    assert result["images"] == 1


def test_a_clear_after_the_links_expired_renders_again_once(fast_emulator: PhotaEmulator) -> None:
    """A job whose links expired before any try kept its outputs is counted as charged and replaced (a new job,
    under the limit); the next clear finds the replacement by id and pays nothing."""
    store = JsonStore()
    first = operator(timeout=10).execute(task_context(store, 1))  # type: ignore[arg-type]
    fast_emulator.advance(A_DAY_AND_AN_HOUR)  # its signed links are dead now

    second = operator(timeout=10).execute(task_context(store, 2))  # type: ignore[arg-type]

    assert len(generate_posts(fast_emulator)) == 2
    assert second["job_id"] != first["job_id"]
    (url,) = second["download_urls"]
    assert requests.get(url, timeout=10).status_code == 200
    third = operator(timeout=10).execute(task_context(store, 3))  # type: ignore[arg-type]
    assert len(generate_posts(fast_emulator)) == 2
    assert third["job_id"] == second["job_id"]
