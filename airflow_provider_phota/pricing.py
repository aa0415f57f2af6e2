"""What Phota calls cost: the published list prices, the user's own price table, estimates and actual costs.

Amounts are :class:`~decimal.Decimal` dollars, never floats, so ``3 x $0.15`` is exactly ``$0.45``. A rate the
provider does not know is never guessed: the cost is then ``None`` ("unknown"), and a task with a ``max_cost_usd``
limit refuses to start rather than spend an unknown amount.

Known list prices (docs/api-decisions.md, "Pricing"): training is charged per profile (``standard`` $2.90,
``fast`` $1.49); ``/enhance`` and ``/remix`` per output image, $0.12, or $0.15 when a trained identity is
recognised in it. The per-model rates of ``/edit`` and ``/generate`` (and ``gpt-image-2``'s token billing) are not
published in a form the provider can carry, so they come from the connection's ``price_table`` extra::

    {"images": {"nb2": {"plain": "0.05", "with_identity": "0.08"},
                "nb2/4K": {"plain": "0.09", "with_identity": "0.12"},
                "gpt-image-2/2K/high": {"plain": "0.19", "with_identity": "0.22"}},
     "training": {"standard": "2.50"}}

An ``images`` key is ``enhance`` or ``remix``, or a base model, optionally narrowed by resolution and (for
``gpt-image-2``) quality; the most specific key that matches a request wins. Entries replace the list prices
they name (a negotiated discount), the others stay.

For one request, :func:`estimate_worst_case` gives the most it can cost (every output with identity; the
``max_cost_usd`` guard compares it to the limit) and :func:`cost_of` what a finished one cost, from the count and
``known_subjects`` of its answer. Both take the request body the operator sends, so a batch prices each row the
same way and adds the results up with :func:`total`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from airflow_provider_phota import contract
from airflow_provider_phota.contract import Endpoint, Violation

__all__ = [
    "LIST_PRICES",
    "TRAINING",
    "Cost",
    "PriceTable",
    "Rate",
    "combined",
    "cost_of",
    "estimate_worst_case",
    "parse_price_table",
    "total",
    "training_cost",
]

TRAINING = "profiles/add"  # the "endpoint" of a training, next to the studio endpoints
DEFAULT_RESOLUTION = "1K"  # what /edit and /generate render without a resolution (api-decisions D14)
DEFAULT_QUALITY = "auto"  # gpt-image-2 without a quality [BM]
_FIXED_ENDPOINTS = (Endpoint.ENHANCE.value, Endpoint.REMIX.value)
_USD = 'a number of dollars >= 0, e.g. 0.12 or "0.12"'


@dataclass(frozen=True)
class Rate:
    """The price of one output image: ``plain``, or ``with_identity`` when a trained profile is recognised in it."""

    plain: Decimal
    with_identity: Decimal


@dataclass(frozen=True)
class PriceTable:
    """Rates by ``images`` key (see the module docstring) and training price by tier."""

    images: Mapping[str, Rate] = field(default_factory=dict)
    training: Mapping[str, Decimal] = field(default_factory=dict)

    def merged(self, other: PriceTable) -> PriceTable:
        """This table with ``other``'s entries on top."""
        return PriceTable({**self.images, **other.images}, {**self.training, **other.training})

    def image_rate(self, endpoint: Endpoint | str, request: Mapping[str, Any]) -> tuple[str, Rate | None]:
        """The key that prices ``request`` on ``endpoint`` and its rate (``None``: unknown). The key returned for an
        unknown rate is the most specific one, the one to add to the table."""
        keys = rate_keys(endpoint, request)
        for key in keys:
            if key in self.images:
                return key, self.images[key]
        return keys[0], None


def rate_keys(endpoint: Endpoint | str, request: Mapping[str, Any]) -> list[str]:
    """The ``images`` keys that may price a request, most specific first."""
    endpoint = Endpoint(endpoint)
    if endpoint.value in _FIXED_ENDPOINTS:
        return [endpoint.value]
    model = str(request.get("base_model") or contract.DEFAULT_BASE_MODEL)
    resolution = str(request.get("resolution") or DEFAULT_RESOLUTION)
    keys = [f"{model}/{resolution}", model]
    if model == contract.QUALITY_BASE_MODEL:
        keys.insert(0, f"{model}/{resolution}/{request.get('quality') or DEFAULT_QUALITY}")
    return keys


# --- parsing the user's table ----------------------------------------------------------------------------------


def _amount(field_name: str, value: Any, problems: list[Violation]) -> Decimal:
    """A price from a JSON number or a numeric string, exactly as written (``0.1`` is ``Decimal("0.1")``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append(Violation(field_name, f"{value!r} is not a price", _USD))
        return Decimal(0)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        problems.append(Violation(field_name, f"{value!r} is not a number", _USD))
        return Decimal(0)
    if not amount.is_finite() or amount < 0:
        problems.append(Violation(field_name, f"{value!r} is out of range", _USD))
        return Decimal(0)
    return amount


def _image_keys() -> list[str]:
    keys = list(_FIXED_ENDPOINTS)
    for model, resolutions in contract.BASE_MODEL_RESOLUTIONS.items():
        keys += [model, *(f"{model}/{resolution}" for resolution in resolutions)]
        if model == contract.QUALITY_BASE_MODEL:
            keys += [f"{model}/{r}/{q}" for r in resolutions for q in contract.QUALITIES]
    return keys


IMAGE_KEYS: tuple[str, ...] = tuple(_image_keys())
_IMAGE_KEYS_ALLOWED = (
    "enhance, remix, a base model (nb2, gpt-image-2, qwen-image-2, flux-2, reve), optionally /<resolution> "
    "(nb2/4K) and for gpt-image-2 /<resolution>/<quality> (gpt-image-2/2K/high)"
)


def parse_price_table(value: Any, field_name: str = "price_table") -> tuple[PriceTable, list[Violation]]:
    """The table in ``value`` (a mapping, or its JSON text as a connection form stores it) and what is wrong with
    it, each problem naming its place (``price_table.images.nb2.plain``). An empty value is an empty table."""
    problems: list[Violation] = []
    if isinstance(value, str):
        if not value.strip():
            return PriceTable(), []
        try:
            value = json.loads(value)
        except ValueError as error:
            return PriceTable(), [Violation(field_name, f"is not valid JSON ({error})", "a JSON object")]
    if not isinstance(value, Mapping):
        return PriceTable(), [Violation(field_name, f"{value!r} is not an object", '{"images": ..., "training": ...}')]
    for name in sorted(set(value) - {"images", "training"}):
        problems.append(Violation(f"{field_name}.{name}", "is not a section of the price table", "images, training"))
    images: dict[str, Rate] = {}
    section = value.get("images") or {}
    if not isinstance(section, Mapping):
        problems.append(Violation(f"{field_name}.images", f"{section!r} is not an object", "an object of rates"))
        section = {}
    for key, rate in section.items():
        where = f"{field_name}.images.{key}"
        if key not in IMAGE_KEYS:
            problems.append(Violation(where, "is not a rate the API charges", _IMAGE_KEYS_ALLOWED))
            continue
        if not isinstance(rate, Mapping) or set(rate) != {"plain", "with_identity"}:
            allowed = '{"plain": <usd>, "with_identity": <usd>}'
            problems.append(Violation(where, f"{rate!r} does not have exactly plain and with_identity", allowed))
            continue
        plain = _amount(f"{where}.plain", rate["plain"], problems)
        images[key] = Rate(plain, _amount(f"{where}.with_identity", rate["with_identity"], problems))
    training: dict[str, Decimal] = {}
    section = value.get("training") or {}
    if not isinstance(section, Mapping):
        problems.append(Violation(f"{field_name}.training", f"{section!r} is not an object", "an object of prices"))
        section = {}
    for tier, price in section.items():
        if tier not in contract.TRAINING_TIERS:
            problems.append(Violation(f"{field_name}.training.{tier}", "is not a training tier", "standard, fast"))
            continue
        training[tier] = _amount(f"{field_name}.training.{tier}", price, problems)
    return PriceTable(MappingProxyType(images), MappingProxyType(training)), problems


# The published list prices [RN-0.5], [RN-0.6], [RMX]; see docs/api-decisions.md, "Pricing".
LIST_PRICES, _ = parse_price_table(
    {
        "training": {"standard": "2.90", "fast": "1.49"},
        "images": {
            "enhance": {"plain": "0.12", "with_identity": "0.15"},
            "remix": {"plain": "0.12", "with_identity": "0.15"},
        },
    }
)


# --- costs -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """What a call costs (or may cost, for an estimate) and how that was computed.

    ``usd`` is ``None`` when a rate is unknown. ``basis`` says it in words for the log, the XCom result and the
    asset event: ``2 x $0.15 (identity recognised) = $0.30``.
    """

    endpoint: str
    usd: Decimal | None
    basis: str
    count: int = 0
    with_identity: int = 0
    rate_key: str = ""

    @property
    def usd_float(self) -> float | None:
        """``usd`` as the float XCom and JSON carry (cents and below are exact enough in a float's 15 digits)."""
        return None if self.usd is None else float(self.usd)

    def as_extra(self) -> dict[str, Any]:
        """The ``cost_usd`` and ``cost_basis`` keys of a result, an asset event or a manifest row."""
        return {"cost_usd": self.usd_float, "cost_basis": self.basis}


def usd(amount: Decimal) -> str:
    """``$0.45``; sub-cent rates keep their digits (``$0.025``)."""
    text = f"{amount:.2f}" if amount == amount.quantize(Decimal("0.01")) else f"{amount.normalize():f}"
    return f"${text}"


def _count(request: Mapping[str, Any]) -> int:
    count = request.get("num_output_images")
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1


def _unknown(endpoint: str, key: str, count: int, with_identity: int) -> Cost:
    return Cost(endpoint, None, f"unknown: no rate for {key!r} in the price table", count, with_identity, key)


def _image_cost(
    endpoint: Endpoint | str, request: Mapping[str, Any], prices: PriceTable, count: int, with_identity: int
) -> Cost:
    name = Endpoint(endpoint).value
    key, rate = prices.image_rate(endpoint, request)
    if rate is None:
        return _unknown(name, key, count, with_identity)
    plain = count - with_identity
    amount = plain * rate.plain + with_identity * rate.with_identity
    parts = []
    if with_identity:
        parts.append(f"{with_identity} x {usd(rate.with_identity)} (identity recognised)")
    if plain or not parts:
        parts.append(f"{plain} x {usd(rate.plain)} (no identity)")
    return Cost(name, amount, f"{' + '.join(parts)} = {usd(amount)} ({key} rate)", count, with_identity, key)


def identity_outputs(count: int, known_subjects: Mapping[str, int]) -> int:
    """How many of ``count`` outputs are billed at the identity rate. ``known_subjects`` counts appearances per
    profile; two profiles may share an output or not, which the counts do not tell, so this takes the higher
    reading (their sum, at most ``count``) and never reports less than the bill (api-decisions, "Pricing")."""
    return min(count, sum(max(0, int(n)) for n in known_subjects.values()))


def estimate_worst_case(endpoint: Endpoint | str, request: Mapping[str, Any], prices: PriceTable) -> Cost:
    """The most ``request`` can cost on ``endpoint`` (``TRAINING`` for a profile): every output with identity.

    :param endpoint: ``"edit"``, ``"generate"``, ``"enhance"``, ``"remix"`` or :data:`TRAINING`.
    :param request: the request body (``num_output_images``, ``base_model``, ``resolution``, ``quality``; for a
        training ``training_tier``).
    :param prices: the price table, usually the connection's (``PhotaHook().prices``).
    """
    if endpoint == TRAINING:
        return training_cost(request.get("training_tier"), prices)
    count = _count(request)
    return _image_cost(endpoint, request, prices, count, count)


def cost_of(
    endpoint: Endpoint | str,
    request: Mapping[str, Any],
    prices: PriceTable,
    *,
    count: int,
    known_subjects: Mapping[str, int],
) -> Cost:
    """What a finished image request cost: ``count`` outputs, those with a recognised identity
    (:func:`identity_outputs` of the answer's ``known_subjects``) at the identity rate."""
    return _image_cost(endpoint, request, prices, count, identity_outputs(count, known_subjects))


def training_cost(tier: str | None, prices: PriceTable, *, reused: bool = False) -> Cost:
    """The price of one training of ``tier`` (``standard`` when ``None``); ``reused``: nothing was trained."""
    tier = tier or "standard"
    if reused:
        return Cost(TRAINING, Decimal(0), "$0.00: an existing profile was reused, no training paid", 0, 0, tier)
    price = prices.training.get(tier)
    if price is None:
        return _unknown(TRAINING, f"training.{tier}", 1, 0)
    return Cost(TRAINING, price, f"1 profile x {usd(price)} ({tier} training)", 1, 0, tier)


def total(costs: Iterable[Cost]) -> Decimal | None:
    """The sum of ``costs``; ``None`` when any of them is unknown."""
    amounts = [cost.usd for cost in costs]
    if any(amount is None for amount in amounts):
        return None
    return sum((amount for amount in amounts if amount is not None), Decimal(0))


def combined(costs: Iterable[Cost], *, endpoint: str = "batch") -> Cost:
    """One :class:`Cost` for many (the rows of a batch): the total, or unknown with the first unknown row's rate key,
    so ``limit_refusal(combined(estimates), limit, scope="this batch of 20 rows")`` guards a whole batch."""
    items = list(costs)
    amount = total(items)
    count, with_identity = sum(c.count for c in items), sum(c.with_identity for c in items)
    unknown = [c for c in items if c.usd is None]
    if unknown:
        basis = f"unknown: {len(unknown)} of {len(items)} request(s) have no rate ({unknown[0].rate_key!r} first)"
        return Cost(endpoint, None, basis, count, with_identity, unknown[0].rate_key)
    assert amount is not None
    return Cost(endpoint, amount, f"{len(items)} request(s), {count} output(s) = {usd(amount)}", count, with_identity)


# --- the guard ---------------------------------------------------------------------------------------------------


def parse_limit(field_name: str, value: Any) -> Decimal | Violation | None:
    """A ``max_cost_usd`` argument: ``None`` (no limit), a number or a numeric string (a rendered template) > 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    allowed = "a number of dollars > 0, or None for no limit"
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return Violation(field_name, f"{value!r} is not a number", allowed)
    if isinstance(value, float) and not math.isfinite(value):
        return Violation(field_name, f"{value!r} is out of range", allowed)
    try:
        limit = Decimal(str(value).strip())
    except InvalidOperation:
        return Violation(field_name, f"{value!r} is not a number", allowed)
    if not limit.is_finite() or limit <= 0:
        return Violation(field_name, f"{value!r} is out of range", allowed)
    return limit


def limit_refusal(estimate: Cost, limit: Decimal, *, scope: str = "this task", where: str = "") -> str | None:
    """Why ``estimate`` does not fit under ``limit`` (the message the task fails with), or ``None`` when it fits.

    :param scope: what the limit applies to, for the message (``"this task"``, ``"this batch of 20 rows"``).
    :param where: where the price table comes from, for the message (``"connection 'phota_default'"``).
    """
    if estimate.usd is None:
        source = f" of {where}" if where else ""
        return (
            f"max_cost_usd is {usd(limit)} but the cost of {scope} is unknown: no rate for {estimate.rate_key!r} "
            f"in the price table{source}. Add it to the connection's price_table extra, or drop max_cost_usd; "
            "the provider does not guess a price."
        )
    if estimate.usd > limit:
        return (
            f"The worst-case cost of {scope} is {usd(estimate.usd)} ({estimate.basis}), above max_cost_usd "
            f"{usd(limit)}: nothing was sent. Raise max_cost_usd or ask for fewer images."
        )
    return None


@dataclass(frozen=True)
class PriceTableExtra:
    """The connection's ``price_table`` extra: the user's rates over the list prices (read by the hook)."""

    setting: str = "prices"

    def read(self, label: str, value: Any) -> PriceTable | Violation:
        """The list prices with the table on top, or the first problem (naming its place in the table)."""
        table, problems = parse_price_table(value)
        if not problems:
            return LIST_PRICES.merged(table)
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        return Violation(label.replace("price_table", first.field, 1), first.message + more, first.allowed)
