"""Campaign files as spreadsheets and people save them: what a batch reads, and how it names each problem."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_phota.campaign_files import CampaignRow, check_rows, read_campaign, row_columns
from airflow_provider_phota.contract import Violation

ALLOWED = row_columns("generate")


def spreadsheet_csv(path: Path, rows: list[list[str]], *, delimiter: str = ",") -> Path:
    """What Excel's "CSV UTF-8" writes: a byte order mark, CRLF line ends, quoted cells where needed."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return path


def described(problems: list[Violation]) -> list[str]:
    return [problem.describe() for problem in problems]


def test_row_columns_are_what_a_row_may_set() -> None:
    assert {"prompt", "aspect_ratio", "resolution", "num_output_images", "profile_tag", "count"} <= ALLOWED
    assert not {"async", "callback_url", "client_request_id", "response_mode", "images"} & ALLOWED
    assert {"images", "profile_ids"} <= row_columns("edit")


def test_a_bom_crlf_file_with_an_extra_column_is_refused_once_per_column(tmp_path: Path) -> None:
    header = ["profile_tag", "prompt", "owner_notes", "aspect_ration", "count"]
    body = [["brand-face", f"poster {n}", "ask Kim", "1:1" if n == 2 else "", "1"] for n in range(1, 401)]
    path = spreadsheet_csv(tmp_path / "campaign.csv", [header, *body])
    assert path.read_bytes().startswith(b"\xef\xbb\xbfprofile_tag,")

    rows, problems = read_campaign(str(path), allowed=ALLOWED)

    assert len(rows) == 400
    assert described(problems) == [
        "column 'aspect_ration': is not a request field (1 of 400 rows, first line 3); did you mean 'aspect_ratio'? "
        f"(allowed: {', '.join(repr(c) for c in sorted(ALLOWED))}; pass `ignore_columns=['aspect_ration']` to skip it)",
        "column 'owner_notes': is not a request field (all 400 rows) "
        f"(allowed: {', '.join(repr(c) for c in sorted(ALLOWED))}; pass `ignore_columns=['owner_notes']` to skip it)",
    ]
    assert "profile_tag" in rows[0].values  # the byte order mark is not part of the first column's name

    rows, problems = read_campaign(str(path), allowed=ALLOWED, ignore_columns=["owner_notes", "aspect_ration"])

    assert problems == []
    assert rows[0] == CampaignRow({"profile_tag": "brand-face", "prompt": "poster 1", "count": "1"}, "line 2")
    assert rows[-1].label == "line 401"


def test_an_excel_style_file_written_with_utf8_sig_and_crlf_reads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    with path.open("w", encoding="utf-8-sig", newline="\r\n") as handle:  # what a Windows tool does with "\n"
        handle.write('id,prompt,aspect_ratio\n"spring-1","Café au lait, ☕",1:1\n,,\nspring-2,Tea,16:9\n')
    assert b"\r\n" in path.read_bytes()

    rows, problems = read_campaign(str(path), allowed=ALLOWED)

    assert problems == []
    assert rows == [
        CampaignRow({"prompt": "Café au lait, ☕", "aspect_ratio": "1:1"}, "line 2 (id 'spring-1')"),
        CampaignRow({"prompt": "Tea", "aspect_ratio": "16:9"}, "line 4 (id 'spring-2')"),
    ]


def test_a_semicolon_csv_is_sniffed(tmp_path: Path) -> None:
    path = spreadsheet_csv(tmp_path / "de.csv", [["prompt", "aspect_ratio"], ["Kaffee, Kuchen", "4:3"]], delimiter=";")

    rows, problems = read_campaign(str(path), allowed=ALLOWED)

    assert problems == []
    assert [row.values for row in rows] == [{"prompt": "Kaffee, Kuchen", "aspect_ratio": "4:3"}]


def test_rows_are_numbered_by_the_file_line_they_start_on(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text(
        "id,prompt\r\n"
        + 'a,"first line\r\nsecond line\r\nthird line"\r\n'
        + "\r\n"
        + "b,plain\r\n"
        + '"c","two\nlines"\r\n'
        + "d,last",
        newline="",
    )

    rows, problems = read_campaign(str(path), allowed=ALLOWED)

    assert problems == []
    assert [row.label for row in rows] == [
        "line 2 (id 'a')",
        "line 6 (id 'b')",
        "line 7 (id 'c')",
        "line 9 (id 'd')",
    ]
    assert rows[0].values["prompt"] == "first line\r\nsecond line\r\nthird line"


def test_blank_lines_and_rows_of_empty_cells_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("\n\nprompt,count\n\n,\nposter,2\n   \n")

    rows, problems = read_campaign(str(path), allowed=ALLOWED)

    assert problems == []
    assert rows == [CampaignRow({"prompt": "poster", "count": "2"}, "line 6")]


def test_json_lines_and_json(tmp_path: Path) -> None:
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"id": 7, "prompt": "a", "count": 2}\n\n{"prompt": "b", "notes": "x"}\n')
    listed = tmp_path / "rows.json"
    listed.write_text(json.dumps([{"prompt": "a"}, "oops"]))

    rows, problems = read_campaign(str(lines), allowed=ALLOWED)
    assert [(row.label, row.values) for row in rows] == [
        ("line 1 (id '7')", {"prompt": "a", "count": 2}),
        ("line 3", {"prompt": "b", "notes": "x"}),
    ]
    assert described(problems)[0].startswith("column 'notes': is not a request field (1 of 2 rows, first line 3)")

    rows, problems = read_campaign(str(listed), allowed=ALLOWED)
    assert rows == [CampaignRow({"prompt": "a"}, "item 1")]
    assert described(problems) == ["item 2: must be an object, got str (allowed: a dict of columns)"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("rows.xlsx", b"PK", "requests: "),
        ("missing.csv", None, "does not exist"),
        ("latin1.csv", "prompt\nCaf\xe9\n".encode("latin-1"), "is not UTF-8 text (line 2)"),
        ("bad.jsonl", b'{"prompt": "a"}\n{nope\n', "requests: line 2: is not JSON"),
        ("bad.json", b'{"prompt": "a"}', "is not a JSON list"),
        ("wide.csv", b"prompt\na,b\n", "requests: line 2: has 2 cells, the header has 1 columns"),
        (
            "twice.csv",
            b"\n\nprompt,count,prompt\na,1,b\n",
            "requests: line 3: the header names 'prompt' more than once",
        ),
    ],
)
def test_unreadable_files_give_one_problem_and_no_rows(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    rows, problems = read_campaign(str(path), allowed=ALLOWED)

    assert rows == []
    assert len(problems) == 1
    assert expected in problems[0].describe()


def test_inline_rows_are_checked_the_same_way() -> None:
    inline: list[Any] = [{"prompt": "a", "owner": "kim", "id": "x"}, {"prompt": "b", "owner": ""}, {"prompt": "c"}]

    rows, problems = check_rows(inline, allowed=ALLOWED)

    assert [row.label for row in rows] == ["row 1 (id 'x')", "row 2", "row 3"]
    assert [problem.field for problem in problems] == ["column 'owner'"]
    assert "(1 of 3 rows, first row 1 (id 'x'))" in problems[0].message

    rows, problems = check_rows([{"prompt": "a", "client_request_id": "mine"}], allowed=ALLOWED)
    assert (
        problems[0]
        .describe()
        .startswith("column 'client_request_id': is set by the batch operator, not by a row (the only row, row 1)")
    )

    rows, problems = check_rows(inline, allowed=ALLOWED, ignore_columns=["owner"])
    assert problems == []
    assert [row.values for row in rows] == [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}]
