"""The pytest plugin is opt-in, and a project that loads it keeps its own names.

Installing the provider does not load it (no ``pytest11`` entry point); a project's conftest does, with
``pytest_plugins = [...]``. Everything it registers is namespaced: the marker ``phota_live``, fixtures ``phota_*``
(``_phota_*`` private), options ``--phota-*``. Each test runs a small project of its own with pytester, in a fresh
interpreter (in-process runs would share pytest's marker cache with this session).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from airflow_provider_phota.testing import pytest_plugin

pytest_plugins = ["pytester"]

# The inner runs: no cache files, strict markers as in most projects, pytest-asyncio's setting made explicit.
ARGS = ("-p", "no:cacheprovider", "--strict-markers", "-rs")
INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""

OPT_IN = 'pytest_plugins = ["airflow_provider_phota.testing.pytest_plugin"]\n'

# A project that uses the plain names for its own purposes: a `live` marker, `emulator` and `conn_id` fixtures.
OTHER_PROJECT_INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
markers =
    live: this project's own marker
"""
OTHER_PROJECT_CONFTEST = f"""
{OPT_IN}
import pytest

@pytest.fixture
def emulator():
    return "the project's own emulator"

@pytest.fixture
def conn_id():
    return "the project's own connection"
"""
OTHER_PROJECT_TESTS = """
import pytest

@pytest.mark.live
def test_own_live_marker_runs():
    pass

def test_own_fixtures(emulator, conn_id):
    assert emulator == "the project's own emulator"
    assert conn_id == "the project's own connection"
"""


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pytest_plugin.LIVE_KEY_ENV, raising=False)


LOADED = "def test_loaded(pytestconfig):\n    assert pytestconfig.pluginmanager.has_plugin('{}')\n"


def test_installing_the_provider_does_not_load_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(LOADED.format(pytest_plugin.__name__))
    pytester.runpytest_subprocess(*ARGS).assert_outcomes(failed=1)


def test_a_conftest_loads_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(OPT_IN)
    pytester.makepyfile(LOADED.format(pytest_plugin.__name__))
    pytester.runpytest_subprocess(*ARGS).assert_outcomes(passed=1)


@pytest.mark.usefixtures("no_key")
def test_another_projects_live_marker_and_fixtures_are_untouched(pytester: pytest.Pytester) -> None:
    pytester.makeini(OTHER_PROJECT_INI)
    pytester.makeconftest(OTHER_PROJECT_CONFTEST)
    pytester.makepyfile(OTHER_PROJECT_TESTS)

    result = pytester.runpytest_subprocess(*ARGS)

    result.assert_outcomes(passed=2)  # the old plugin skipped the project's `live` test without PHOTA_API_KEY
    markers = pytester.runpytest_subprocess("--markers", *ARGS).stdout.str()
    assert "@pytest.mark.live: this project's own marker" in markers
    assert "@pytest.mark.phota_live:" in markers
    assert [line for line in markers.splitlines() if line.startswith("@pytest.mark.live:")] == [
        "@pytest.mark.live: this project's own marker"
    ]


@pytest.mark.usefixtures("no_key")
def test_plugin_registers_no_plain_live_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(OPT_IN)
    pytester.makepyfile("import pytest\n\n@pytest.mark.live\ndef test_unregistered_marker():\n    pass\n")

    result = pytester.runpytest_subprocess(*ARGS)

    # a project that did not register `live` gets pytest's own strict-markers error, as without the provider
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'live' not found in `markers` configuration option*"])


PHOTA_LIVE_TESTS = """
import pytest

@pytest.mark.phota_live
def test_real_api():
    raise AssertionError("ran against the real API")

def test_plain():
    pass
"""


@pytest.mark.usefixtures("no_key")
def test_phota_live_tests_are_skipped_without_a_key(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(OPT_IN)
    pytester.makepyfile(PHOTA_LIVE_TESTS)

    result = pytester.runpytest_subprocess(*ARGS)

    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*phota_live test: set PHOTA_API_KEY to run it against the real API*"])


def test_phota_live_tests_run_with_a_key(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pytest_plugin.LIVE_KEY_ENV, "a-real-key")
    pytester.makeini(INI)
    pytester.makeconftest(OPT_IN)
    pytester.makepyfile(PHOTA_LIVE_TESTS)

    result = pytester.runpytest_subprocess(*ARGS)

    result.assert_outcomes(passed=1, failed=1)  # the live test ran (and here, without a real API, failed)
    result.stdout.fnmatch_lines(["*AssertionError: ran against the real API*"])


def test_every_fixture_of_the_plugin_is_namespaced(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(OPT_IN)
    pytester.makepyfile("def test_nothing():\n    pass\n")

    output = pytester.runpytest_subprocess("--fixtures", "-v", *ARGS).stdout.str()

    section = output.split(f"fixtures defined from {pytest_plugin.__name__}", 1)[1]
    section = re.split(r"\n-{3,} fixtures defined from ", section, maxsplit=1)[0]
    names = re.findall(r"^(\w+)(?: \[\w+ scope\])? -- ", section, flags=re.MULTILINE)
    assert "phota_emulator" in names  # the section was found and parsed
    assert set(names) == {
        "phota_emulator_session",
        "phota_emulator",
        "phota_connection",
        "phota_conn_id",
        "_phota_extra_emulators",
        "phota_emulator_factory",
        "phota_airflow_db",
        "phota_dag_bag",
    }
    assert all(name.startswith(("phota_", "_phota_")) for name in names)


class _Recorder:
    """Stands in for pytest's parser, option group and config; records what the plugin registers."""

    def __init__(self) -> None:
        self.options: list[str] = []
        self.ini_lines: list[tuple[str, str]] = []
        self.inis: dict[str, Any] = {}

    def getini(self, name: str) -> Any:
        return self.inis.get(name, "")

    def getgroup(self, name: str, description: str = "") -> _Recorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.options.extend(names)

    def addini(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.ini_lines.append(("ini", name))

    def addinivalue_line(self, name: str, line: str) -> None:
        self.ini_lines.append((name, line))


def test_every_option_and_marker_of_the_plugin_is_namespaced() -> None:
    recorder = _Recorder()
    pytest_plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    pytest_plugin.pytest_configure(recorder)  # type: ignore[arg-type]

    assert recorder.options == ["--phota-training-seconds", "--phota-job-seconds"]
    assert [name for name, _ in recorder.ini_lines] == ["ini", "markers"]
    assert ("ini", "phota_dags_folder") in recorder.ini_lines
    assert [line.split(":", 1)[0] for kind, line in recorder.ini_lines if kind == "markers"] == ["phota_live"]
