"""The README says exactly what the code does: its DAG example builds, its reference tables name the real
arguments, defaults and templated fields, its XCom table lists the real keys, and every message it quotes is the
one the code produces."""

from __future__ import annotations

import inspect
import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_phota import results
from airflow_provider_phota.exceptions import PhotaConnectionError, PhotaValidationError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.hooks.transport import CONNECTION_EXTRAS
from airflow_provider_phota.operators.batch import PhotaBatchOperator
from airflow_provider_phota.operators.images import (
    PhotaEditOperator,
    PhotaEnhanceOperator,
    PhotaGenerateOperator,
    PhotaRemixOperator,
)
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator, PhotaDeleteProfileOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
IMAGE_OPERATORS = [PhotaEditOperator, PhotaGenerateOperator, PhotaEnhanceOperator, PhotaRemixOperator]
ROW = re.compile(r"^\| `(?P<name>\w+)`(?P<templated> \(T\))? \| (?P<default>[^|]+) \|", re.MULTILINE)


def section(heading: str) -> str:
    """The README text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = README.index(heading + "\n")
    rest = README[start + len(heading) + 1 :]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", rest, re.MULTILINE)]
    return rest[: ends[0]] if ends else rest


def table_after(text: str, marker: str) -> list[re.Match[str]]:
    """The argument rows of the table that follows ``marker``."""
    start = text.index(marker)
    table = text[start:].split("\n\n")[1]
    return list(ROW.finditer(table))


def parameters(cls: type) -> dict[str, inspect.Parameter]:
    found: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            found.update(inspect.signature(klass.__init__).parameters)
    return found


def check_rows(cls: type, rows: list[re.Match[str]]) -> None:
    assert rows, f"no argument rows found for {cls.__name__}"
    params = parameters(cls)
    for row in rows:
        name, default = row["name"], row["default"].strip()
        if name == "mode":  # BaseSensorOperator's own argument
            continue
        assert name in params, f"README documents {cls.__name__}({name}=...), which does not exist"
        assert (name in cls.template_fields) == bool(row["templated"]), f"{cls.__name__}.{name}: templated mark"
        if default == "required":
            assert params[name].default is inspect.Parameter.empty, f"{cls.__name__}.{name} is not required"
        elif default.startswith("`[operators]"):
            assert params[name].default is False  # conf default on an unconfigured test deployment
        elif default == "derived":
            assert params[name].default is None
        elif default.startswith('`"') or re.fullmatch(r"[\d.]+", default):
            value = json.loads(default.strip("`"))
            actual = params[name].default
            if name == "response_mode":  # None means "urls" in sync mode
                assert actual is None
                assert value == "urls"
            else:
                assert actual == value, f"{cls.__name__}.{name}: README {value!r}, code {actual!r}"
        else:
            literal = {"`None`": None, "`True`": True, "`False`": False}[default]
            assert params[name].default is literal, f"{cls.__name__}.{name}: README {default}"


def test_the_dag_example_builds() -> None:
    from airflow.sdk import DAG

    code = section("### A DAG").split("```python\n")[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the example as a user would paste it
    dag = next(value for value in namespace.values() if isinstance(value, DAG))
    assert set(dag.task_dict) == {"create_profile", "wait", "portraits"}
    assert dag.task_dict["wait"].deferrable is True
    assert dag.task_dict["portraits"].deferrable is True


def test_the_reference_tables_match_the_signatures() -> None:
    reference = section("### Reference")
    check_rows(PhotaCreateProfileOperator, table_after(reference, "**`PhotaCreateProfileOperator`**"))
    check_rows(ProfileReadySensor, table_after(reference, "**`ProfileReadySensor`**"))
    for cls in IMAGE_OPERATORS:
        check_rows(cls, table_after(reference, "Every image operator also takes:"))
    delete_line = re.search(r"\*\*`PhotaDeleteProfileOperator\((.*?)\)`\*\*", reference)
    assert delete_line is not None
    documented = {part.split(" ")[0].split("=")[0] for part in delete_line[1].split(", ")}
    assert documented == {"profile_id", "ignore_missing", "phota_conn_id"}
    assert documented <= set(parameters(PhotaDeleteProfileOperator))


@pytest.mark.parametrize("cls", IMAGE_OPERATORS)
def test_the_endpoint_arguments_are_the_operators_own(cls: type) -> None:
    row = re.search(rf"^\| `{cls.__name__}` \| (.*) \|$", section("### Reference"), re.MULTILINE)
    assert row is not None
    documented = set(re.findall(r"`(\w+)`", row[1]))
    own = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    assert documented == own
    assert own <= set(cls.template_fields)  # "(all T)"


def test_the_xcom_table_lists_every_key() -> None:
    outputs = section("## Outputs and XCom")
    for name in results.__all__:
        row = re.search(rf"^\| [^|]+ \| `{name}` \| (.*) \|$", outputs, re.MULTILINE)
        assert row is not None, f"{name} is missing from the XCom table"
        # key names are the backticked words before any explanation in parentheses
        documented = set(re.findall(r"`(\w+)`(?: \(|,|$)", row[1] + ","))
        assert documented == set(typing.get_type_hints(getattr(results, name))), name


def test_the_connection_extras_table_matches_the_hook() -> None:
    rows = re.findall(r"^\| `(\w+)` \| ([\d.]+|none) \|", section("## Configure the connection"), re.MULTILINE)
    assert {name for name, _ in rows} == set(CONNECTION_EXTRAS)
    from airflow_provider_phota.get_provider_info import connection_type_info

    fields = connection_type_info()["conn-fields"]
    for name, default in rows:
        if default == "none":  # price_table: no table beyond the list prices
            assert fields[name]["schema"]["default"] is None, name
            continue
        assert float(fields[name]["schema"]["default"]) == float(default), name


def test_the_quoted_validation_message_is_the_real_one() -> None:
    class TaskInstance:
        dag_id, run_id, task_id, map_index = "d", "r", "t", -1

    operator = PhotaGenerateOperator(task_id="t", prompt="a fox", resolution="4K", base_model="flux-2")
    with pytest.raises(PhotaValidationError) as caught:
        operator.prepare_request({"ti": TaskInstance()})  # type: ignore[typeddict-item]
    assert f"\n{caught.value}\n" in README


def test_the_quoted_connection_messages_are_the_real_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "phota", "host": "http://127.0.0.1:9", "password": "k"}
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_DEFAULT", json.dumps({**connection, "extra": {"timeout": 0}}))
    with pytest.raises(PhotaValidationError) as bad_extra:
        PhotaHook().list_profile_ids()
    assert f"`{bad_extra.value}`" in README

    extras = {"retry_wait": 0.001, "retry_max_wait": 0.001}
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_DEFAULT", json.dumps({**connection, "extra": extras}))
    with pytest.raises(PhotaConnectionError) as refused:  # nothing listens on port 9
        PhotaHook().list_profile_ids()
    assert f"`{refused.value}`" in README


def test_the_quoted_warning_is_the_real_one(caplog: pytest.LogCaptureFixture) -> None:
    operator = PhotaGenerateOperator(task_id="t", prompt="a fox", use_async_job=False, deferrable=True)
    logged: list[str] = []
    operator.log.warning = lambda message, *args: logged.append(message % args)  # type: ignore[method-assign]
    operator._warn_about_ineffective_arguments()
    assert len(logged) == 1
    assert f"`{logged[0]}`" in README


def test_the_hook_example_runs(phota_emulator: Any, phota_conn_id: str, tmp_path: Path) -> None:
    from airflow_provider_phota.testing.samples import PhotoServer, make_subject_photos

    code = section("## Using the hook directly").split("```python\n")[1].split("```")[0]
    target = tmp_path / "portrait.png"
    code = code.replace('"s3://aws_default@my-bucket/portrait.png"', repr(str(target)))  # no bucket here
    make_subject_photos(tmp_path / "photos")
    with PhotoServer(tmp_path / "photos") as server, PhotaHook() as hook:
        urls = [server.url_for(path.name) for path in sorted((tmp_path / "photos").iterdir())]
        hook.create_profile(urls, tag="customer-42")
        phota_emulator.advance(3600)  # training done
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own example
    assert target.read_bytes().startswith(b"\x89PNG")
    assert len(phota_emulator.charges("images")) == 1


def test_the_xcom_json_example_has_exactly_the_result_keys() -> None:
    example = section("## Outputs and XCom").split("```json\n")[1].split("```")[0]
    example = example.replace('"..."', '"x"')
    assert set(json.loads(example)) == set(typing.get_type_hints(results.ImageOperatorResult))


def test_the_batch_section_matches_the_operator(tmp_path: Path) -> None:
    batch = section("### Batch rendering")
    check_rows(PhotaBatchOperator, table_after(batch, "**`PhotaBatchOperator`**"))
    documented = {row["name"] for row in table_after(batch, "**`PhotaBatchOperator`**")}
    own = set(inspect.signature(PhotaBatchOperator.__init__).parameters) - {"self", "kwargs"}
    assert documented == own

    class TaskInstance:
        dag_id, run_id, task_id, map_index = "d", "r", "t", -1

    rows = [{"prompt": "a fox"}, {"prompt": "a fox", "aspect_ratio": "2:1"}]
    operator = PhotaBatchOperator(task_id="t", endpoint="generate", requests=rows, output_path=str(tmp_path))
    with pytest.raises(PhotaValidationError) as caught:
        operator.prepare({"ti": TaskInstance()})  # type: ignore[typeddict-item]
    assert f"`{caught.value}`" in batch
