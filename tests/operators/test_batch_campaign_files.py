"""PhotaBatchOperator reads campaign files as spreadsheets save them (issue 23), judged on the emulator's ledger.

Written against the batch operator's ``ignore_columns`` argument and the campaign_files module's messages: these
tests pass once the batch reads its rows through :mod:`airflow_provider_phota.campaign_files`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_phota._compat import AirflowFailException
from airflow_provider_phota.operators.batch import PhotaBatchOperator
from airflow_provider_phota.testing import PhotaEmulator

pytestmark = pytest.mark.usefixtures("airflow_db")
ROWS = 40


@pytest.fixture
def conn(phota_emulator: PhotaEmulator, phota_connection: Callable[..., str]) -> PhotaEmulator:
    phota_connection(retry_wait=0.01, retry_max_wait=0.05, max_attempts=3)
    return phota_emulator


def context() -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="batch", run_id="manual__files", task_id="render", map_index=-1, try_number=1)
    return {"ti": ti, "task_instance": ti, "outlet_events": {}}


def excel_campaign(path: Path) -> Path:
    """What Excel's "CSV UTF-8" writes for a marketing sheet with a notes column: BOM, CRLF, a quoted newline."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["id", "prompt", "aspect_ratio", "resolution", "count", "owner_notes"])
        writer.writerow(["spring-1", "poster 1\nwith a second line", "1:1", "1K", "1", "ask Kim"])
        writer.writerows([f"spring-{n}", f"poster {n}", "1:1", "1K", "1", "ok"] for n in range(2, ROWS + 1))
    return path


def test_an_extra_column_is_refused_once_before_anything_is_paid(conn: PhotaEmulator, tmp_path: Path) -> None:
    campaign = excel_campaign(tmp_path / "campaign.csv")
    operator = PhotaBatchOperator(
        task_id="render", endpoint="generate", requests=str(campaign), output_path=str(tmp_path / "out")
    )

    with pytest.raises(AirflowFailException) as raised:
        operator.execute(context())

    message = str(raised.value)
    assert message.count("owner_notes") == 2  # the column, and the ignore_columns hint: once, not once per row
    assert f"column 'owner_notes': is not a request field (all {ROWS} rows)" in message
    assert "pass `ignore_columns=['owner_notes']` to skip it" in message
    assert "\ufeff" not in message
    for internal in ("'async'", "'callback_url'", "'client_request_id'", "'response_mode'"):
        assert internal not in message
    assert "'profile_tag'" in message
    assert "'count'" in message
    assert conn.requests == []
    assert conn.ledger == []


def test_the_same_file_renders_with_the_column_ignored(conn: PhotaEmulator, tmp_path: Path) -> None:
    campaign = excel_campaign(tmp_path / "campaign.csv")
    out = tmp_path / "out"

    summary = PhotaBatchOperator(
        task_id="render",
        endpoint="generate",
        requests=str(campaign),
        output_path=str(out),
        ignore_columns=["owner_notes"],
        deferrable=False,
        poll_interval=0.05,
    ).execute(context())

    assert (summary["rows"], summary["succeeded"], summary["images"]) == (ROWS, ROWS, ROWS)
    prompts = sorted(r.json["prompt"] for r in conn.requests_to("/v1/phota/generate", "POST"))
    assert len(prompts) == ROWS
    assert "poster 1\nwith a second line" in prompts
    assert all("owner_notes" not in r.json and "id" not in r.json for r in conn.requests_to("/v1/phota/generate"))
    assert len(conn.charges("images")) == ROWS


def test_a_bad_row_is_named_by_its_file_line_and_id(conn: PhotaEmulator, tmp_path: Path) -> None:
    campaign = tmp_path / "campaign.csv"
    campaign.write_text('id;prompt;aspect_ratio\r\nspring-1;"two\r\nlines";1:1\r\nspring-2;poster;2:1\r\n', newline="")

    with pytest.raises(AirflowFailException) as raised:
        PhotaBatchOperator(
            task_id="render", endpoint="generate", requests=str(campaign), output_path=str(tmp_path / "out")
        ).execute(context())

    assert "line 4 (id 'spring-2') aspect_ratio: '2:1' is not a valid value" in str(raised.value)
    assert conn.requests == []
