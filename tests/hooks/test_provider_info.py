"""Airflow sees the provider, its hook and its connection form, and the form matches what the hook reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest
from airflow_versions import AIRFLOW_2, AIRFLOW_VERSION
from packaging.version import Version

import airflow_provider_phota
from airflow_provider_phota.get_provider_info import connection_type_info, get_provider_info
from airflow_provider_phota.hooks.phota import CONNECTION_EXTRAS, PhotaHook
from airflow_provider_phota.hooks.retry import RetryPolicy
from airflow_provider_phota.hooks.transport import ConnectionExtra, ConnectionSettings
from airflow_provider_phota.pricing import LIST_PRICES, Rate

AIRFLOW_DIR = Path(airflow.__file__).parent


def _schema(name: str) -> dict[str, Any]:
    return dict(json.loads((AIRFLOW_DIR / name).read_text()))


def test_provider_info_validates_against_airflows_schema() -> None:
    info = get_provider_info()

    jsonschema.validate(info, _schema("provider_info.schema.json"))
    assert info["package-name"] == "airflow-provider-phota"
    assert info["versions"] == [airflow_provider_phota.__version__]


@pytest.mark.skipif(Version("3.1") > AIRFLOW_VERSION, reason="the callback receiver is Airflow 3.1+")
def test_the_callback_option_is_declared_with_the_default_the_receiver_uses(monkeypatch: Any) -> None:
    from airflow_provider_phota.plugins import callbacks

    option = get_provider_info()["config"][callbacks.CONFIG_SECTION]["options"][callbacks.CONFIG_CONN_ID]
    monkeypatch.delenv("AIRFLOW__PHOTA__CALLBACK_CONN_ID", raising=False)
    assert option["default"] == callbacks.DEFAULT_CONN_ID == callbacks.callback_conn_id()
    monkeypatch.setenv("AIRFLOW__PHOTA__CALLBACK_CONN_ID", "phota_callbacks")
    assert callbacks.callback_conn_id() == "phota_callbacks"


def test_connection_type_validates_against_the_provider_yaml_schema() -> None:
    """The stricter provider.yaml schema also describes ``conn-fields`` and ``ui-field-behaviour`` (Airflow 3.2+)."""
    connection_types = _schema("provider.yaml.schema.json")["properties"]["connection-types"]

    jsonschema.validate(get_provider_info()["connection-types"], connection_types)
    (only,) = get_provider_info()["connection-types"]
    assert only == connection_type_info()
    assert only["connection-type"] == PhotaHook.conn_type == "phota"
    assert only["hook-name"] == PhotaHook.hook_name


def test_declared_modules_and_hook_class_import() -> None:
    import importlib

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    module_name, _, class_name = connection_type_info()["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module_name), class_name) is PhotaHook


def test_providers_manager_knows_the_provider_and_the_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-phota" in manager.providers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ProvidersManager.hooks is deprecated in favour of the task-sdk runtime
        hook_info = manager.hooks["phota"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider_phota.hooks.phota.PhotaHook"
    assert hook_info.package_name == "airflow-provider-phota"
    assert hook_info.connection_id_attribute_name == "phota_conn_id"
    assert hook_info.connection_testable is True
    if AIRFLOW_2 or Version("3.2") <= AIRFLOW_VERSION:  # 3.0 and 3.1 fill them only where FAB is installed
        assert manager.field_behaviours["phota"] == PhotaHook.get_ui_field_behaviour()


EXTRA_LABELS = {name: spec["label"] for name, spec in connection_type_info()["conn-fields"].items()}


def airflow_cli_json(*args: str) -> Any:
    """``airflow <args> -o json`` in a fresh process (AIRFLOW_HOME from conftest), its JSON answer."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout[result.stdout.index("[") :])  # 2.x prints warnings first


@pytest.mark.skipif(
    AIRFLOW_VERSION.release[:2] == (3, 0),
    reason="Airflow 3.0's UI shows no provider's extra fields without the FAB provider (the README says so)",
)
def test_the_connection_form_shows_the_extras_with_their_labels() -> None:
    """The form a user fills in: Airflow 2's FAB form from the hook's widgets, Airflow 3's from the metadata its
    UI asks the API server for (3.1 builds it from the same widgets with FAB stood in for; 3.2+ from conn-fields).
    In a fresh process, as in the webserver or API server: this one's providers manager is already initialised."""
    result = subprocess.run(
        [sys.executable, "-c", FORM_LABELS],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    form = json.loads(result.stdout.strip().splitlines()[-1])
    assert form["extras"] == EXTRA_LABELS
    if form["password"] is not None:  # Airflow 3 relabels the password field in the metadata
        assert form["password"] == "API Key"


FORM_LABELS = """
import json
try:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
except ImportError:  # Airflow 2: the FAB form
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    extras = {
        key.removeprefix("extra__phota__"): str(widget.field.args[0])
        for key, widget in widgets.items()
        if key.startswith("extra__phota__")
    }
    print(json.dumps({"extras": extras, "password": None}))
else:
    (phota,) = [meta for meta in HookMetaService.hook_meta_data() if meta.connection_type == "phota"]
    extras = {name: field["schema"]["title"] for name, field in (phota.extra_fields or {}).items()}
    password = phota.standard_fields.password.title if phota.standard_fields else "(no standard fields)"
    print(json.dumps({"extras": extras, "password": password}))
"""


@pytest.mark.skipif(
    AIRFLOW_VERSION.release[:2] in ((3, 0), (3, 1)),
    reason="``airflow providers widgets`` of 3.0 and 3.1 lists widgets only where FAB is installed",
)
def test_airflow_cli_lists_the_connection_form_fields() -> None:
    widgets = airflow_cli_json("providers", "widgets")
    ours = {row["connection_parameter_name"] for row in widgets if row["package_name"] == "airflow-provider-phota"}
    assert ours == {f"extra__phota__{name}" for name in EXTRA_LABELS}


def test_airflow_cli_lists_the_hook() -> None:
    """What an operator sees: ``airflow providers hooks`` in a fresh process (AIRFLOW_HOME from conftest)."""
    hooks = airflow_cli_json("providers", "hooks")
    phota = [entry for entry in hooks if entry["connection_type"] == "phota"]
    assert phota == [
        {
            "connection_type": "phota",
            "class": "airflow_provider_phota.hooks.phota.PhotaHook",
            "conn_id_attribute_name": "phota_conn_id",
            "package_name": "airflow-provider-phota",
            "hook_name": "Phota",
        }
    ]


def test_ui_field_behaviour_matches_the_provider_info() -> None:
    behaviour = PhotaHook.get_ui_field_behaviour()
    declared = connection_type_info()["ui-field-behaviour"]

    jsonschema.validate(behaviour, _schema("customized_form_field_behaviours.schema.json"))
    assert behaviour == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }
    assert behaviour["relabeling"]["password"] == "API Key"
    assert {"schema", "login"} <= set(behaviour["hidden_fields"])
    assert "port" not in behaviour["hidden_fields"]  # a stored port is what 3.3's list Test button needs
    assert "password" not in behaviour["hidden_fields"]
    assert "host" not in behaviour["hidden_fields"]


def test_conn_fields_are_exactly_the_extras_the_hook_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = set(connection_type_info()["conn-fields"])
    assert declared == set(CONNECTION_EXTRAS)

    # And each declared field really changes the settings (a typo on either side would leave a default).
    values = {
        "read_timeout": 11,
        "connect_timeout": 12,
        "max_attempts": 13,
        "retry_wait": 14,
        "retry_max_wait": 15,
        "max_retry_after": 16,
        "price_table": '{"images": {"flux-2": {"plain": 0.02, "with_identity": "0.03"}}}',
        "ca_bundle": __file__,
    }
    assert set(values) == declared
    settings = ConnectionSettings.from_connection(host=None, port=None, password="k", extras=values)
    assert (settings.read_timeout, settings.connect_timeout) == (11.0, 12.0)
    assert settings.retry == RetryPolicy(max_attempts=13, initial_wait=14.0, max_wait=15.0, max_retry_after=16.0)
    # The prices live with the hook, not with the HTTP settings.
    connection = {"conn_type": "phota", "password": "k", "extra": values}
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_PRICED", json.dumps(connection))
    prices = PhotaHook("phota_priced").prices
    assert prices.images["flux-2"] == Rate(Decimal("0.02"), Decimal("0.03"))
    assert prices.images["enhance"] == LIST_PRICES.images["enhance"]  # the list prices stay
    assert settings.ca_bundle == __file__


def test_conn_field_defaults_match_the_hooks_defaults() -> None:
    fields = connection_type_info()["conn-fields"]
    defaults = ConnectionSettings(base_url="x", api_key="k")
    policy = RetryPolicy()
    assert fields["read_timeout"]["schema"]["default"] == defaults.read_timeout
    assert fields["connect_timeout"]["schema"]["default"] == defaults.connect_timeout
    assert fields["max_attempts"]["schema"]["default"] == policy.max_attempts
    assert fields["retry_wait"]["schema"]["default"] == policy.initial_wait
    assert fields["retry_max_wait"]["schema"]["default"] == policy.max_wait
    assert fields["max_retry_after"]["schema"]["default"] == policy.max_retry_after


def test_conn_field_bounds_match_what_the_hook_accepts() -> None:
    """The form declares the same lower bound the hook enforces, so a UI that checks the schema refuses it first."""
    fields = connection_type_info()["conn-fields"]
    for name, extra in CONNECTION_EXTRAS.items():
        if not isinstance(extra, ConnectionExtra):
            continue  # price_table: JSON text, validated by the hook (tests/cost)
        bound = "exclusiveMinimum" if extra.above_minimum else "minimum"
        assert fields[name]["schema"][bound] == extra.minimum, name
        assert set(fields[name]["schema"]) == {"type", "default", bound}, name


def test_fractional_extras_are_declared_as_numbers() -> None:
    """Seconds may be fractional (retry_wait 0.5): a UI enforcing the schema must accept them."""
    fields = connection_type_info()["conn-fields"]
    for name in ("read_timeout", "connect_timeout", "retry_wait", "retry_max_wait", "max_retry_after"):
        assert "number" in fields[name]["schema"]["type"], name
    assert "integer" in fields["max_attempts"]["schema"]["type"]


def test_form_widgets_come_from_the_conn_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """The legacy FAB form (Airflow < 3.2); the FAB/wtforms modules are stood in for, as Airflow 3 lacks them.
    Every widget is a text field (the FAB UIs of 2.11-3.1 drop a hook with any other kind) checked by the hook's
    own range rule."""
    import types

    class ValidationError(Exception): ...

    class StringField:
        def __init__(self, label: str, **kwargs: Any) -> None:
            self.label, self.kwargs = label, kwargs

    fakes = {
        "flask_appbuilder": types.ModuleType("flask_appbuilder"),
        "flask_appbuilder.fieldwidgets": types.SimpleNamespace(BS3TextFieldWidget=lambda: "widget"),
        "flask_babel": types.SimpleNamespace(lazy_gettext=lambda text: f"i18n:{text}"),
        "wtforms": types.SimpleNamespace(StringField=StringField),
        "wtforms.validators": types.SimpleNamespace(Optional=lambda: "optional", ValidationError=ValidationError),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)

    widgets = PhotaHook.get_connection_form_widgets()

    fields = connection_type_info()["conn-fields"]
    assert set(widgets) == set(fields)
    for name, widget in widgets.items():
        assert isinstance(widget, StringField), name
        assert widget.label == f"i18n:{fields[name]['label']}"
        assert widget.kwargs["description"] == fields[name]["description"]
        if name == "ca_bundle":  # a path on the workers: the hook checks it there, not the web server's form
            assert widget.kwargs["validators"] == ["optional"]
            continue
        optional, checked = widget.kwargs["validators"]
        assert optional == "optional"
        if name == "price_table":
            with pytest.raises(ValidationError, match=r"price_table: is not valid JSON"):
                checked(None, types.SimpleNamespace(data="{rates"))
            checked(None, types.SimpleNamespace(data='{"images": {"nb2": {"plain": 0.1, "with_identity": 0.12}}}'))
            continue
        with pytest.raises(ValidationError, match=rf"{name}: 'soon' is not a number \(allowed: "):
            checked(None, types.SimpleNamespace(data="soon"))
        with pytest.raises(ValidationError, match="out of range"):
            checked(None, types.SimpleNamespace(data="-1"))
    check_wait = widgets["retry_wait"].kwargs["validators"][1]
    check_wait(None, types.SimpleNamespace(data="0.5"))  # seconds may be fractional
    check_attempts = widgets["max_attempts"].kwargs["validators"][1]
    with pytest.raises(ValidationError, match="not an integer"):
        check_attempts(None, types.SimpleNamespace(data="2.5"))
    check_attempts(None, types.SimpleNamespace(data="3"))


def test_form_widgets_without_fab_are_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask_appbuilder", None)
    monkeypatch.setitem(sys.modules, "flask_appbuilder.fieldwidgets", None)
    assert PhotaHook.get_connection_form_widgets() == {}
