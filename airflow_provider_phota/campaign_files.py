"""Campaign files as people save them: the rows of a batch from a CSV, JSON or JSON Lines file, or inline dicts.

A CSV is read as spreadsheets write it: UTF-8 with or without a byte order mark (Excel's "CSV UTF-8"), CRLF or LF
line ends, cells with quoted newlines, ``,`` or ``;`` between cells (whichever the header uses more; ``,`` on a
tie), and blank lines or rows of empty cells skipped. JSON is a list of objects; JSON Lines (``.jsonl``) is one
object per line, blank lines skipped.

Every column must be something a row may set (the caller passes that set: :func:`row_columns` gives it per studio
endpoint); an unknown column is refused once, with how many rows set it and the closest allowed name, so a typo
never renders the wrong thing (a column left empty in every row is dropped: it says nothing). Columns named in
``ignore_columns`` are dropped instead. The column ``id`` is the row's own
name: it is never sent, and it appears in the row's reference.

Each row carries a reference for messages: ``line 302 (id 'spring-17')`` for a CSV or JSON Lines file (the file
line the row starts on, the header being line 1, quoted newlines counted, as a text editor numbers them),
``item 3`` for a JSON file and ``row 3`` for inline rows (1-based). Problems are
:class:`~airflow_provider_phota.contract.Violation` s, returned rather than raised, so a caller reports every
problem of every row before anything is paid.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_phota import contract
from airflow_provider_phota.contract import Endpoint, Violation
from airflow_provider_phota.engine.rows import COUNT_ALIAS, OPERATOR_FIELDS, PROFILE_TAG

__all__ = [
    "ID_COLUMN",
    "CampaignRow",
    "check_rows",
    "read_campaign",
    "row_columns",
]

ID_COLUMN = "id"  # the row's own name, for messages; never sent
SUFFIXES = (".csv", ".json", ".jsonl")
FIELD = "requests"  # the batch operator's argument the rows come from
_DELIMITERS = (",", ";")


@dataclass(frozen=True)
class CampaignRow:
    """One row: the columns it sets (an ignored column or the id left out) and where it is, for messages."""

    values: dict[str, Any]
    label: str


def row_columns(endpoint: Endpoint | str) -> frozenset[str]:
    """What a row of a batch to ``endpoint`` may set: the endpoint's request fields (without the ones the batch
    operator sets itself: ``async``, ``callback_url``, ``client_request_id``, ``response_mode``) plus
    ``profile_tag`` and ``count``."""
    return (contract.ENDPOINT_FIELDS[Endpoint(endpoint)] - OPERATOR_FIELDS) | {PROFILE_TAG, COUNT_ALIAS}


def check_rows(
    rows: Sequence[Any], *, allowed: Collection[str], ignore_columns: Collection[str] = ()
) -> tuple[list[CampaignRow], list[Violation]]:
    """Inline rows (e.g. an upstream task's XCom) checked like a file's: ``row 1`` is the first.

    :param rows: the rows, each a dict of column -> value.
    :param allowed: the columns a row may set, e.g. ``row_columns(endpoint)``.
    :param ignore_columns: columns to drop instead of refusing them.
    """
    return _checked(((f"row {n}", row) for n, row in enumerate(rows, start=1)), allowed, ignore_columns)


def read_campaign(
    location: str, *, allowed: Collection[str], ignore_columns: Collection[str] = ()
) -> tuple[list[CampaignRow], list[Violation]]:
    """The rows of a ``.csv``, ``.json`` or ``.jsonl`` campaign file, and every problem found in it.

    A file that cannot be read gives no rows and one violation naming ``requests``.

    :param location: a local path or an object storage URI (``s3://conn_id@bucket/key.csv``).
    :param allowed: the columns a row may set, e.g. ``row_columns(endpoint)``.
    :param ignore_columns: columns to drop instead of refusing them (``owner_notes``...).
    """
    text = _read_text(location)
    if isinstance(text, Violation):
        return [], [text]
    suffix = _suffix(location)
    if suffix == ".csv":
        parsed = _csv_rows(text)
    elif suffix == ".jsonl":
        parsed = _jsonl_rows(text)
    else:
        parsed = _json_rows(text, location)
    if isinstance(parsed, Violation):
        return [], [parsed]
    return _checked(parsed, allowed, ignore_columns)


def _suffix(location: str) -> str:
    name = location.split("?", 1)[0].rstrip("/")
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name.rsplit("/", 1)[-1] else ""


def _read_text(location: str) -> str | Violation:
    from airflow_provider_phota.storage import storage_path, validate_storage_uri

    expected = "a list of request dicts, or the URI or path of a .csv, .json or .jsonl file of rows"
    if "://" in location[:24]:
        problem = validate_storage_uri(FIELD, location)
        if problem is not None:
            return problem
    if _suffix(location) not in SUFFIXES:
        return Violation(FIELD, f"{location!r} is not a .csv, .json or .jsonl file", expected)
    try:
        data = storage_path(location).read_bytes()
    except FileNotFoundError:
        return Violation(FIELD, f"{location} does not exist", expected)
    except (OSError, ValueError) as error:
        return Violation(FIELD, f"{location} cannot be read: {error}", expected)
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte order mark
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return Violation(FIELD, f"{location} is not UTF-8 text (line {line})", "a file saved as UTF-8 ('CSV UTF-8')")


def _delimiter(text: str) -> str:
    """``;`` when the header line has more of them than commas (spreadsheets in locales with a decimal comma)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    return max(_DELIMITERS, key=header.count)  # max keeps the first on a tie: ","


def _csv_rows(text: str) -> list[tuple[str, dict[str, Any]]] | Violation:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header: list[str] | None = None
    rows: list[tuple[str, dict[str, Any]]] = []
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1  # the line this record began on; the next one's
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, or a spreadsheet row of empty cells
            if header is None:
                header = [name.strip() for name in cells]
                twice = sorted({name for name in header if name and header.count(name) > 1})
                if twice:
                    message = f"line {line}: the header names {', '.join(map(repr, twice))} more than once"
                    return Violation(FIELD, message, "each column once")
                continue
            if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
                message = f"line {line}: has {len(cells)} cells, the header has {len(header)} columns"
                return Violation(FIELD, message, "one cell per header column")
            row = {name: cell for name, cell in zip(header, cells, strict=False) if name or cell.strip()}
            rows.append((f"line {line}", row))
    except csv.Error as error:
        return Violation(FIELD, f"line {reader.line_num}: is not valid CSV: {error}", "CSV with a header line")
    return rows


def _jsonl_rows(text: str) -> list[tuple[str, Any]] | Violation:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"line {number}", json.loads(line)))
        except ValueError as error:
            return Violation(FIELD, f"line {number}: is not JSON: {error}", "one JSON object per line")
    return rows


def _json_rows(text: str, location: str) -> list[tuple[str, Any]] | Violation:
    try:
        items = json.loads(text)
    except ValueError as error:
        return Violation(FIELD, f"{location} is not JSON: {error}", "a JSON list of objects")
    if not isinstance(items, list):
        return Violation(FIELD, f"{location} is not a JSON list", "a JSON list of objects")
    return [(f"item {n}", item) for n, item in enumerate(items, start=1)]


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _checked(
    labelled: Iterable[tuple[str, Any]], allowed: Collection[str], ignore_columns: Collection[str]
) -> tuple[list[CampaignRow], list[Violation]]:
    """Rows with their references, and one violation per unknown column (not one per row and column)."""
    known, ignored = frozenset(allowed), frozenset(ignore_columns)
    rows: list[CampaignRow] = []
    problems: list[Violation] = []
    unknown: dict[str, list[str]] = {}  # column -> references of the rows that set it
    for label, raw in labelled:
        if not isinstance(raw, Mapping):
            problems.append(Violation(label, f"must be an object, got {type(raw).__name__}", "a dict of columns"))
            continue
        values = {str(name): value for name, value in raw.items()}
        row_id = values.pop(ID_COLUMN, None)
        if not _is_blank(row_id):
            label = f"{label} (id {str(row_id).strip()!r})"
        for name in sorted(values.keys() - known):
            if name in ignored:
                del values[name]
            elif not _is_blank(values[name]):
                unknown.setdefault(name, []).append(label)
            else:
                del values[name]  # an empty cell of an unknown column says nothing: it is not sent either
        rows.append(CampaignRow(values, label))
    for name, labels in sorted(unknown.items()):
        problems.append(_unknown_column(name, labels, len(rows), known))
    return rows, problems


def _unknown_column(name: str, labels: list[str], total: int, allowed: frozenset[str]) -> Violation:
    if len(labels) == total:
        where = f"all {total} rows" if total > 1 else f"the only row, {labels[0]}"
    else:
        where = f"{len(labels)} of {total} rows, first {labels[0]}"
    close = difflib.get_close_matches(name, sorted(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    what = "is set by the batch operator, not by a row" if name in OPERATOR_FIELDS else "is not a request field"
    allowed_text = ", ".join(repr(column) for column in sorted(allowed))
    return Violation(
        f"column {name!r}",
        f"{what} ({where}){hint}",
        f"{allowed_text}; pass `ignore_columns=[{name!r}]` to skip it",
    )
