"""Cost: each operator reports what the emulator's ledger charged, the max_cost_usd guard refuses before any
request, an unknown rate is reported as unknown (and refused under a limit), and the metrics go through Stats."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_phota import _compat, metrics, pricing
from airflow_provider_phota._compat import AirflowFailException
from airflow_provider_phota.exceptions import PhotaValidationError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.operators.images import (
    PhotaEditOperator,
    PhotaEnhanceOperator,
    PhotaGenerateOperator,
    PhotaRemixOperator,
)
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.emulator import EMULATOR_MODEL_RATES
from airflow_provider_phota.testing.samples import image_base64

URLS = [f"https://photos.example.com/subject/{i}.jpg?X-Amz-Signature=secret{i}" for i in range(10)]
FAST = {"deferrable": False, "poll_interval": 0.05}


def context(task_id: str = "task") -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="cost", run_id="manual__1", task_id=task_id, map_index=-1, try_number=1)
    return {"ti": ti, "task_instance": ti}


@pytest.fixture
def priced(phota_connection: Any) -> str:
    """``phota_default`` with the emulator's own per-model rates as its price table: every rate is known."""
    return phota_connection(price_table=EMULATOR_MODEL_RATES, retry_wait=0.001, retry_max_wait=0.001)


@pytest.fixture
def ready_profile(phota_emulator: PhotaEmulator, priced: str) -> str:
    profile_id = PhotaHook().create_profile(URLS, tag="cost-subject")
    phota_emulator.advance(phota_emulator.training_seconds + 1)
    return profile_id


def ledger_usd(emulator: PhotaEmulator, kind: str) -> Decimal:
    (charge,) = emulator.charges(kind)
    return Decimal(str(charge.amount_usd))


# --- the price table -------------------------------------------------------------------------------------------


def test_list_prices_are_the_published_ones() -> None:
    prices = pricing.LIST_PRICES
    assert prices.training == {"standard": Decimal("2.90"), "fast": Decimal("1.49")}
    for endpoint in ("enhance", "remix"):
        assert prices.images[endpoint] == pricing.Rate(Decimal("0.12"), Decimal("0.15"))
    assert set(prices.images) == {"enhance", "remix"}  # per-model rates are not published: never invented


def test_costs_are_exact_decimals() -> None:
    cost = pricing.cost_of("enhance", {"num_output_images": 3}, pricing.LIST_PRICES, count=3, known_subjects={})
    assert cost.usd == Decimal("0.36")
    assert cost.basis == "3 x $0.12 (no identity) = $0.36 (enhance rate)"
    both = pricing.cost_of("remix", {}, pricing.LIST_PRICES, count=3, known_subjects={"p": 2})
    assert both.usd == Decimal("0.42")
    assert both.basis == "2 x $0.15 (identity recognised) + 1 x $0.12 (no identity) = $0.42 (remix rate)"


def test_identity_outputs_never_understate_the_bill() -> None:
    assert pricing.identity_outputs(3, {}) == 0
    assert pricing.identity_outputs(3, {"a": 2}) == 2
    assert pricing.identity_outputs(3, {"a": 3, "b": 3}) == 3  # two identities in the same outputs
    assert pricing.identity_outputs(4, {"a": 1, "b": 2}) == 3  # cannot tell whether they share an output


def test_an_unknown_rate_is_unknown_never_invented() -> None:
    cost = pricing.cost_of("generate", {"base_model": "flux-2"}, pricing.LIST_PRICES, count=1, known_subjects={})
    assert cost.usd is None
    assert cost.usd_float is None
    assert cost.basis == "unknown: no rate for 'flux-2/1K' in the price table"
    assert pricing.total([cost, pricing.training_cost("fast", pricing.LIST_PRICES)]) is None


def test_a_batch_is_guarded_as_one() -> None:
    prices = pricing.LIST_PRICES
    rows = [{"num_output_images": 2}, {"num_output_images": 4}]
    estimates = [pricing.estimate_worst_case("enhance", row, prices) for row in rows]
    batch = pricing.combined(estimates)
    assert (batch.usd, batch.count, batch.with_identity) == (Decimal("0.90"), 6, 6)
    assert pricing.limit_refusal(batch, Decimal("0.90"), scope="this batch of 2 rows") is None
    refusal = pricing.limit_refusal(batch, Decimal("0.89"), scope="this batch of 2 rows")
    assert refusal is not None
    assert refusal.startswith("The worst-case cost of this batch of 2 rows is $0.90")
    unknown = pricing.combined([*estimates, pricing.estimate_worst_case("generate", {"base_model": "reve"}, prices)])
    assert unknown.usd is None
    assert unknown.rate_key == "reve/1K"
    assert "unknown" in (pricing.limit_refusal(unknown, Decimal(100), scope="this batch of 3 rows") or "")


def test_the_most_specific_rate_wins() -> None:
    table, problems = pricing.parse_price_table(
        {
            "images": {
                "nb2": {"plain": 0.05, "with_identity": 0.08},
                "nb2/4K": {"plain": "0.09", "with_identity": "0.12"},
                "gpt-image-2/2K/high": {"plain": "0.19", "with_identity": "0.22"},
            }
        }
    )
    assert problems == []
    assert table.image_rate("edit", {"resolution": "4K"}) == ("nb2/4K", pricing.Rate(Decimal("0.09"), Decimal("0.12")))
    assert table.image_rate("generate", {"resolution": "2K"})[0] == "nb2"
    assert table.image_rate("generate", {"base_model": "gpt-image-2", "resolution": "2K", "quality": "high"})[1]
    assert table.image_rate("generate", {"base_model": "gpt-image-2", "resolution": "2K"}) == (
        "gpt-image-2/2K/auto",
        None,
    )
    assert table.images["nb2"].plain == Decimal("0.05")  # a JSON number is read as written, not as a float


@pytest.mark.parametrize(
    ("table", "field", "message"),
    [
        ({"images": {"nb2": {"plain": -1, "with_identity": 1}}}, "price_table.images.nb2.plain", "out of range"),
        ({"images": {"nb2": {"plain": "x", "with_identity": 1}}}, "price_table.images.nb2.plain", "not a number"),
        ({"images": {"flux-2/4K": {"plain": 1, "with_identity": 1}}}, "price_table.images.flux-2/4K", "not a rate"),
        ({"images": {"nb2": {"plain": 1}}}, "price_table.images.nb2", "exactly plain and with_identity"),
        ({"training": {"turbo": 1}}, "price_table.training.turbo", "not a training tier"),
        ({"imgs": {}}, "price_table.imgs", "not a section"),
        ("{not json", "price_table", "not valid JSON"),
    ],
)
def test_a_bad_price_table_names_the_field(table: Any, field: str, message: str) -> None:
    _, problems = pricing.parse_price_table(table)
    assert problems
    assert problems[0].field == field
    assert message in problems[0].message


def test_a_bad_price_table_extra_fails_the_hook_naming_the_field(phota_connection: Any) -> None:
    phota_connection(price_table='{"images": {"nb2": {"plain": -0.05, "with_identity": 0.08}}}')
    with pytest.raises(PhotaValidationError) as caught:
        PhotaHook().prices  # noqa: B018 - reading the prices reads the extra
    assert caught.value.field == "price_table.images.nb2.plain (connection extra)"
    assert "out of range" in str(caught.value)


# --- each operator's cost equals the ledger's charge ------------------------------------------------------------


def image_operators(profile_id: str) -> list[Any]:
    image = image_base64(64, 48)
    return [
        PhotaGenerateOperator(task_id="generate", prompt=f"[[{profile_id}]] at sea", num_output_images=3, **FAST),
        PhotaGenerateOperator(task_id="generate_flux", prompt="a lighthouse", base_model="flux-2", **FAST),
        PhotaEditOperator(task_id="edit", prompt="warmer", images=[image], profile_ids=[profile_id], **FAST),
        PhotaEnhanceOperator(task_id="enhance", image=image, num_output_images=2, **FAST),
        PhotaRemixOperator(task_id="remix", input_image=image, reference_image=image, profile_ids=[profile_id], **FAST),
    ]


@pytest.mark.parametrize("index", range(5), ids=["generate", "generate_flux", "edit", "enhance", "remix"])
def test_the_cost_of_each_image_operator_is_the_ledgers_charge(
    phota_emulator: PhotaEmulator, ready_profile: str, index: int, capfd: pytest.CaptureFixture[str]
) -> None:
    operator = image_operators(ready_profile)[index]
    result = operator.execute(context(operator.task_id))
    assert f"({result['images']} images), 0 failed; cost: {result['cost_basis']}" in capfd.readouterr().out
    charged = ledger_usd(phota_emulator, "images")
    assert result["cost_usd"] is not None
    assert Decimal(str(result["cost_usd"])) == charged
    assert charged > 0
    with_identity = phota_emulator.charges("images")[0].with_identity
    assert ("identity recognised" in result["cost_basis"]) == (with_identity > 0)


@pytest.mark.parametrize(("tier", "urls", "usd"), [("standard", URLS, "2.90"), ("fast", URLS[:5], "1.49")])
def test_the_cost_of_a_training_is_the_ledgers_charge(
    phota_emulator: PhotaEmulator, priced: str, tier: str, urls: list[str], usd: str
) -> None:
    result = PhotaCreateProfileOperator(task_id="create", image_urls=urls, training_tier=tier).execute(context())
    assert Decimal(str(result["cost_usd"])) == ledger_usd(phota_emulator, "profile") == Decimal(usd)
    assert result["cost_basis"] == f"1 profile x ${usd} ({tier} training)"


def test_a_reused_profile_costs_nothing(phota_emulator: PhotaEmulator, priced: str) -> None:
    PhotaHook().create_profile(URLS, tag="again")
    result = PhotaCreateProfileOperator(task_id="create", image_urls=URLS, tag="again").execute(context())
    assert (result["reused"], result["cost_usd"]) == (True, 0.0)
    assert len(phota_emulator.charges("profile")) == 1


def test_without_a_rate_the_cost_is_reported_unknown(phota_emulator: PhotaEmulator, phota_conn_id: str) -> None:
    operator = PhotaGenerateOperator(task_id="g", prompt="a fox", base_model="reve", **FAST)
    result = operator.execute(context())
    assert result["cost_usd"] is None
    assert result["cost_basis"] == "unknown: no rate for 'reve/1K' in the price table"
    assert len(phota_emulator.charges("images")) == 1  # the service charged; the provider does not guess how much


@pytest.mark.usefixtures("airflow_db")
def test_a_deferred_task_and_its_asset_event_carry_the_cost(
    phota_emulator: PhotaEmulator, priced: str, tmp_path: Any
) -> None:
    from dagrun_support import asset_event_extras, return_value, run_dag

    dag_run = run_dag("op_generate_deferrable", out=str(tmp_path / "out"), prompt="a lighthouse at dawn")
    summary = return_value(dag_run, "generate")
    assert Decimal(str(summary["cost_usd"])) == ledger_usd(phota_emulator, "images") == Decimal("0.10")
    (extra,) = asset_event_extras(dag_run, "phota://tests/generated")
    assert (extra["cost_usd"], extra["cost_basis"]) == (summary["cost_usd"], summary["cost_basis"])
    assert summary["cost_basis"] == "2 x $0.05 (no identity) = $0.10 (nb2 rate)"


# --- the guard ---------------------------------------------------------------------------------------------------


def test_a_guard_below_the_estimate_fails_with_zero_requests(phota_emulator: PhotaEmulator, priced: str) -> None:
    operator = PhotaGenerateOperator(task_id="g", prompt="a fox", num_output_images=4, max_cost_usd=0.3, **FAST)
    with pytest.raises(AirflowFailException) as caught:
        operator.execute(context())
    message = str(caught.value)
    assert "worst-case cost of this task is $0.32" in message  # 4 x $0.08 (nb2 with identity)
    assert "above max_cost_usd $0.30" in message
    assert phota_emulator.requests == []
    assert phota_emulator.ledger == []


def test_a_guard_that_fits_lets_the_task_run(phota_emulator: PhotaEmulator, priced: str) -> None:
    operator = PhotaGenerateOperator(task_id="g", prompt="a fox", num_output_images=4, max_cost_usd="0.32", **FAST)
    result = operator.execute(context())
    assert result["cost_usd"] == 0.2  # 4 x $0.05: no identity in a prompt without a profile


def test_an_unknown_rate_under_a_guard_refuses(phota_emulator: PhotaEmulator, phota_conn_id: str) -> None:
    operator = PhotaEditOperator(task_id="e", prompt="x", images=[image_base64(8, 8)], max_cost_usd=10, **FAST)
    with pytest.raises(AirflowFailException, match=r"max_cost_usd is \$10.00 but the cost of this task is unknown"):
        operator.execute(context())
    assert phota_emulator.requests == []


def test_a_training_guard_is_checked_before_any_request(phota_emulator: PhotaEmulator, priced: str) -> None:
    operator = PhotaCreateProfileOperator(task_id="c", image_urls=URLS, tag="t", max_cost_usd=2.5)
    with pytest.raises(AirflowFailException, match=r"\$2.90 \(1 profile x \$2.90 \(standard training\)\)"):
        operator.execute(context())
    assert phota_emulator.requests == []  # not even the tag lookup


@pytest.mark.parametrize("value", [0, -1, "lots", True, float("nan")])
def test_a_bad_max_cost_usd_is_refused_like_every_argument(
    phota_emulator: PhotaEmulator, priced: str, value: Any
) -> None:
    operator = PhotaEnhanceOperator(task_id="e", image=image_base64(8, 8), max_cost_usd=value, **FAST)
    with pytest.raises(AirflowFailException, match=r"max_cost_usd: .* \(allowed: a number of dollars > 0"):
        operator.execute(context())
    assert phota_emulator.requests == []


# --- metrics -----------------------------------------------------------------------------------------------------


class RecordingStats:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, dict[str, str]]] = []

    def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: dict[str, str] | None = None) -> None:
        self.calls.append((stat, count, dict(tags or {})))

    def of(self, stat: str) -> list[tuple[int, dict[str, str]]]:
        return [(count, tags) for name, count, tags in self.calls if name == stat]


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> RecordingStats:
    recording = RecordingStats()
    monkeypatch.setattr(_compat, "Stats", recording, raising=False)
    return recording


def test_stats_is_airflows_own() -> None:
    import importlib

    module = importlib.import_module("airflow.providers.common.compat.sdk")
    assert _compat.__getattr__("Stats") is module.Stats


def test_image_and_cost_metrics(phota_emulator: PhotaEmulator, ready_profile: str, stats: RecordingStats) -> None:
    PhotaGenerateOperator(
        task_id="g", prompt=f"[[{ready_profile}]]", num_output_images=2, resolution="2K", **FAST
    ).execute(context())
    tags = {"endpoint": "generate", "base_model": "nb2"}
    assert stats.of(metrics.IMAGES_PRODUCED) == [(2, tags)]
    assert stats.of(metrics.COST_USD_MICROS) == [(160_000, tags)]  # 2 x $0.08


def test_a_rerun_of_a_finished_image_task_counts_nothing_twice(
    phota_emulator: PhotaEmulator, ready_profile: str, stats: RecordingStats, tmp_path: Any
) -> None:
    """A cleared or re-run task that finds its finished job in its manifest adds nothing to the metrics and reports
    the cost it paid, once."""

    def run() -> Any:
        return PhotaGenerateOperator(
            task_id="g", prompt=f"[[{ready_profile}]]", num_output_images=2, output_path=str(tmp_path), **FAST
        ).execute(context("g"))

    first = run()
    stats.calls.clear()
    again = run()

    assert stats.of(metrics.IMAGES_PRODUCED) == []
    assert stats.of(metrics.COST_USD_MICROS) == []
    assert again == first  # the same job, files, manifest and cost: $0.16, once
    assert first["cost_usd"] == 0.16
    assert len(phota_emulator.charges("images")) == 1


def test_a_failed_job_is_counted_as_charged_and_a_replacement_over_the_limit_is_not_sent(
    phota_emulator: PhotaEmulator, priced: str, stats: RecordingStats
) -> None:
    """A FAILED job counts at its worst case (the public docs never say it is refunded); its replacement would take
    the task to $0.16 (two 1-output jobs at the identity rate), above max_cost_usd $0.10: not sent."""
    phota_emulator.fail_next_jobs(1)
    operator = PhotaGenerateOperator(task_id="g", prompt="a fox", max_cost_usd="0.10", **FAST)

    with pytest.raises(AirflowFailException) as caught:
        operator.execute(context("g"))

    message = str(caught.value)
    assert "COST_LIMIT" in message
    assert "a replacement job was not sent: with it the task may spend $0.16, above max_cost_usd $0.10" in message
    assert len(phota_emulator.jobs) == 1  # no replacement
    tags = {"endpoint": "generate", "base_model": "nb2"}
    assert stats.of(metrics.COST_USD_MICROS) == [(80_000, tags)]  # the FAILED job, counted as charged
    assert stats.of(metrics.IMAGES_PRODUCED) == []


def test_a_remix_without_num_output_images_sends_the_default(phota_emulator: PhotaEmulator, priced: str) -> None:
    """The remix guide marks num_output_images, output_format and response_mode required: all sent."""
    image = image_base64(64, 48)
    PhotaRemixOperator(task_id="r", input_image=image, reference_image=image, **FAST).execute(context("r"))

    (request,) = phota_emulator.requests_to("/v1/phota/remix", "POST")
    assert request.json["num_output_images"] == 1
    assert request.json["output_format"] == "png"
    assert request.json["response_mode"] == "urls"


def test_training_metrics(phota_emulator: PhotaEmulator, priced: str, stats: RecordingStats) -> None:
    PhotaCreateProfileOperator(task_id="c", image_urls=URLS[:5], training_tier="fast").execute(context())
    assert stats.of(metrics.PROFILES_TRAINED) == [(1, {"training_tier": "fast"})]
    assert stats.of(metrics.COST_USD_MICROS) == [(1_490_000, {"endpoint": "profiles_add"})]


def test_retry_and_429_metrics(phota_emulator: PhotaEmulator, priced: str, stats: RecordingStats) -> None:
    phota_emulator.inject_fault("/v1/phota/enhance", status=429, retry_after=0)
    phota_emulator.inject_fault("/v1/phota/jobs/*", status=503)
    PhotaEnhanceOperator(task_id="e", image=image_base64(8, 8), **FAST).execute(context())
    enhance = {"endpoint": "enhance", "base_model": "nb2"}
    assert stats.of(metrics.RATE_LIMITED) == [(1, enhance)]
    assert (1, enhance) in stats.of(metrics.REQUEST_RETRIES)
    assert (1, {"endpoint": "jobs"}) in stats.of(metrics.REQUEST_RETRIES)
    assert len(stats.of(metrics.REQUEST_RETRIES)) == 2


async def test_the_async_client_counts_retries_too(
    phota_emulator: PhotaEmulator, priced: str, stats: RecordingStats
) -> None:
    handle = PhotaHook().submit_job("generate", {"prompt": "x"}, client_request_id="metrics-async-1")
    phota_emulator.inject_fault("/v1/phota/jobs/*", status=502)
    async with PhotaHook() as hook:
        await hook.aget_job(handle.job_id)
    assert stats.of(metrics.REQUEST_RETRIES) == [(1, {"endpoint": "jobs"})]


def test_a_broken_metrics_backend_never_fails_a_task(
    phota_emulator: PhotaEmulator, priced: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("statsd is down")

    monkeypatch.setattr(_compat, "Stats", SimpleNamespace(incr=broken), raising=False)
    result = PhotaEnhanceOperator(task_id="e", image=image_base64(8, 8), **FAST).execute(context())
    assert result["images"] == 1
