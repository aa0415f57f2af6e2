"""Cost of PhotaBatchOperator: the batch reports what the emulator's ledger charged (per row in the manifest, the total
in XCom), max_cost_usd guards the whole batch before the first submit, an unknown rate under a limit refuses, and each
written row counts its images and cost through Stats."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_phota import _compat, metrics
from airflow_provider_phota._compat import AirflowFailException
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.operators.batch import PhotaBatchOperator
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.emulator import EMULATOR_MODEL_RATES, MARKER_MODERATE
from airflow_provider_phota.testing.samples import image_base64

FAST = {"deferrable": False, "poll_interval": 0.05, "timeout": 60}
SUBMITS = "/v1/phota/generate"


def context(task_id: str = "render") -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="batch_cost", run_id="manual__1", task_id=task_id, map_index=-1, try_number=1)
    return {"ti": ti, "task_instance": ti, "outlet_events": {}}


@pytest.fixture
def priced(phota_connection: Any) -> str:
    """``phota_default`` with the emulator's own per-model rates as its price table: every rate is known."""
    return phota_connection(price_table=EMULATOR_MODEL_RATES, retry_wait=0.001, retry_max_wait=0.001)


@pytest.fixture
def face(phota_emulator: PhotaEmulator, priced: str) -> str:
    """A READY profile tagged ``face``."""
    profile_id = PhotaHook().create_profile([f"https://example.com/face/{i}.jpg" for i in range(10)], tag="face")
    phota_emulator.advance(phota_emulator.training_seconds + 1)
    return profile_id


def campaign() -> list[dict[str, Any]]:
    """Row 1: two outputs with the identity (2 x $0.08); row 2: one plain 2K output (nb2 rate: $0.05); row 3's job
    FAILED moderation: counted as charged at its worst case (1 x $0.08), as the public docs never say it is refunded
    (the emulator refunds it: the report errs above the bill, never below)."""
    return [
        {"profile_tag": "face", "prompt": "{subject} holding a mug", "count": 2},
        {"prompt": "a city street at night", "resolution": "2K"},
        {"prompt": f"a poster {MARKER_MODERATE}"},
    ]


def net_ledger(emulator: PhotaEmulator) -> dict[str, Decimal]:
    """Net image charge per job: a FAILED job's refund cancels its charge."""
    net: dict[str, Decimal] = {}
    for charge in emulator.ledger:
        if charge.kind in ("images", "refund"):
            net[charge.ref] = net.get(charge.ref, Decimal(0)) + Decimal(str(charge.amount_usd))
    return net


def manifest(result: dict[str, Any]) -> dict[str, Any]:
    return json.loads(Path(result["manifest_uri"].removeprefix("file://")).read_text())


def test_the_batch_cost_is_the_ledgers_charge(
    phota_emulator: PhotaEmulator, face: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    operator = PhotaBatchOperator(
        task_id="render",
        endpoint="generate",
        requests=campaign(),
        output_path=str(tmp_path),
        max_failed_rows=1,
        max_cost_usd="0.50",  # worst case 2 x 0.08 + 0.08 + 0.08 = $0.32: fits
        **FAST,
    )
    result = operator.execute(context())  # type: ignore[arg-type]

    net = net_ledger(phota_emulator)
    assert result["cost_usd"] is not None
    assert sum(net.values()) == Decimal("0.21")
    assert Decimal(str(result["cost_usd"])) == Decimal("0.29")  # + the FAILED job's worst case, $0.08
    assert result["cost_basis"] == "3 request(s), 3 output(s) = $0.29"
    out = capfd.readouterr().out
    assert "Worst-case cost $0.32 fits max_cost_usd $0.50" in out
    assert "cost: 3 request(s), 3 output(s) = $0.29" in out

    document = manifest(dict(result))
    assert (document["cost_usd"], document["cost_basis"]) == (result["cost_usd"], result["cost_basis"])
    first, second, third = document["rows"]
    # Each row's cost is its job's net charge in the ledger.
    for entry in (first, second):
        assert Decimal(str(entry["cost_usd"])) == net[entry["job_id"]]
    assert first["cost_basis"] == "2 x $0.08 (identity recognised) = $0.16 (nb2 rate)"
    assert second["cost_basis"] == "1 x $0.05 (no identity) = $0.05 (nb2 rate)"
    assert (third["status"], third["cost_usd"]) == ("failed", 0.08)
    assert third["cost_basis"].endswith("; a FAILED job, counted as charged")
    assert third["error"]["job_id"] == third["job_id"]


def test_without_a_rate_the_batch_cost_is_unknown(
    phota_emulator: PhotaEmulator, phota_conn_id: str, tmp_path: Path
) -> None:
    rows = [{"prompt": "a fox", "base_model": "reve"}, {"prompt": "an owl"}]
    result = PhotaBatchOperator(
        task_id="render", endpoint="generate", requests=rows, output_path=str(tmp_path), **FAST
    ).execute(context())  # type: ignore[arg-type]
    assert result["cost_usd"] is None
    assert result["cost_basis"] == "unknown: 2 of 2 request(s) have no rate ('reve/1K' first)"
    assert [row["cost_usd"] for row in manifest(dict(result))["rows"]] == [None, None]
    assert len(phota_emulator.charges("images")) == 2  # the service charged; the provider does not guess how much


def test_list_prices_price_an_enhance_batch(phota_emulator: PhotaEmulator, phota_conn_id: str, tmp_path: Path) -> None:
    rows = [{"image": image_base64(16, 16), "num_output_images": 3}, {"image": image_base64(8, 8)}]
    result = PhotaBatchOperator(
        task_id="render", endpoint="enhance", requests=rows, output_path=str(tmp_path), max_cost_usd=0.6, **FAST
    ).execute(context())  # type: ignore[arg-type]
    assert Decimal(str(result["cost_usd"])) == sum(net_ledger(phota_emulator).values()) == Decimal("0.48")


# --- the guard ---------------------------------------------------------------------------------------------------


def test_a_guard_below_the_batch_estimate_fails_with_zero_submits(
    phota_emulator: PhotaEmulator, priced: str, tmp_path: Path
) -> None:
    rows = [{"prompt": f"poster {n}", "num_output_images": 2} for n in range(5)]  # 10 x $0.08 worst case
    operator = PhotaBatchOperator(
        task_id="render", endpoint="generate", requests=rows, output_path=str(tmp_path), max_cost_usd=0.79, **FAST
    )
    with pytest.raises(AirflowFailException) as caught:
        operator.execute(context())  # type: ignore[arg-type]
    message = str(caught.value)
    assert "The worst-case cost of this batch of 5 rows is $0.80 (5 request(s), 10 output(s) = $0.80)" in message
    assert "above max_cost_usd $0.79: nothing was sent" in message
    assert phota_emulator.requests == []
    assert phota_emulator.ledger == []
    assert not list(tmp_path.iterdir())  # not even a manifest


def test_the_guard_comes_after_the_profile_lookup_and_before_the_first_submit(
    phota_emulator: PhotaEmulator, face: str, tmp_path: Path
) -> None:
    rows = [{"profile_tag": "face", "prompt": "{subject} at sea", "count": 4}]
    before = len(phota_emulator.requests)
    operator = PhotaBatchOperator(
        task_id="render", endpoint="generate", requests=rows, output_path=str(tmp_path), max_cost_usd=0.3, **FAST
    )
    with pytest.raises(AirflowFailException, match=r"worst-case cost of this batch of 1 row is \$0.32"):
        operator.execute(context())  # type: ignore[arg-type]
    sent = phota_emulator.requests[before:]
    assert sent  # the tag was looked up (a GET, free)
    assert all(request.method == "GET" for request in sent)
    assert phota_emulator.requests_to(SUBMITS) == []
    assert phota_emulator.charges("images") == []


def test_an_unknown_rate_under_a_batch_guard_refuses(
    phota_emulator: PhotaEmulator, phota_connection: Any, tmp_path: Path
) -> None:
    phota_connection(price_table={"images": {"nb2": {"plain": "0.05", "with_identity": "0.08"}}})
    rows = [{"prompt": "a fox"}, {"prompt": "an owl", "base_model": "gpt-image-2", "quality": "high"}]
    operator = PhotaBatchOperator(
        task_id="render", endpoint="generate", requests=rows, output_path=str(tmp_path), max_cost_usd=100, **FAST
    )
    with pytest.raises(AirflowFailException) as caught:
        operator.execute(context())  # type: ignore[arg-type]
    assert str(caught.value).startswith(
        "max_cost_usd is $100.00 but the cost of this batch of 2 rows is unknown: no rate for "
        "'gpt-image-2/1K/high' in the price table of connection 'phota_default'"
    )
    assert phota_emulator.requests == []


@pytest.mark.parametrize("value", [0, -1, "lots", True, float("inf")])
def test_a_bad_max_cost_usd_is_refused_with_the_other_arguments(
    phota_emulator: PhotaEmulator, priced: str, tmp_path: Path, value: Any
) -> None:
    operator = PhotaBatchOperator(
        task_id="render",
        endpoint="generate",
        requests=[{"prompt": "x"}],
        output_path=str(tmp_path),
        max_in_flight=0,
        max_cost_usd=value,
        **FAST,
    )
    with pytest.raises(AirflowFailException) as caught:
        operator.execute(context())  # type: ignore[arg-type]
    assert "max_cost_usd: " in str(caught.value)
    assert "(allowed: a number of dollars > 0, or None for no limit)" in str(caught.value)
    assert "max_in_flight: 0 is out of range" in str(caught.value)  # named together, like every argument
    assert phota_emulator.requests == []


def test_max_cost_usd_is_templated() -> None:
    assert "max_cost_usd" in PhotaBatchOperator.template_fields


# --- metrics -----------------------------------------------------------------------------------------------------


class RecordingStats:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, dict[str, str]]] = []

    def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: dict[str, str] | None = None) -> None:
        self.calls.append((stat, count, dict(tags or {})))

    def of(self, stat: str) -> list[tuple[int, dict[str, str]]]:
        return [(count, tags) for name, count, tags in self.calls if name == stat]


def test_each_written_row_counts_its_images_and_cost_once(
    phota_emulator: PhotaEmulator, face: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = RecordingStats()
    monkeypatch.setattr(_compat, "Stats", stats, raising=False)
    arguments = {"task_id": "render", "endpoint": "generate", "output_path": str(tmp_path), "max_failed_rows": 1}
    PhotaBatchOperator(requests=campaign(), **arguments, **FAST).execute(context())  # type: ignore[arg-type]
    tags = {"endpoint": "generate", "base_model": "nb2"}
    assert sorted(stats.of(metrics.IMAGES_PRODUCED)) == [(1, tags), (2, tags)]  # the moderated row produced nothing
    # ... but its FAILED job is counted as charged, once
    assert sorted(stats.of(metrics.COST_USD_MICROS)) == [(50_000, tags), (80_000, tags), (160_000, tags)]

    # A retry takes the rows over from the manifest: nothing is counted twice.
    stats.calls.clear()
    PhotaBatchOperator(requests=campaign(), **arguments, **FAST).execute(context())  # type: ignore[arg-type]
    assert stats.of(metrics.IMAGES_PRODUCED) == []
    assert stats.of(metrics.COST_USD_MICROS) == []
