"""What gets published: the wheel and the sdist, checked as PyPI would, and the wheel installed beside Airflow.

``python -m build`` makes both from the checkout (the wheel from the sdist, so the sdist is proven complete);
``twine check --strict`` accepts them. Then a fresh venv (``uv venv``) gets Airflow, pinned by constraints.txt,
and the built wheel: Airflow lists the provider and parses a DAG built from its operators and sensor.

Needs network access to PyPI on a machine where uv's cache (``UV_CACHE_DIR``, by default ``~/.cache/uv``) is
cold; uv keeps the cache, so later runs install from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest
from uv import find_uv_bin

import airflow_provider_phota

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
NAME = "airflow_provider_phota"
VERSION = airflow_provider_phota.__version__
UV = find_uv_bin()
# Environment variables that would leak this test session into the fresh venv (its Airflow home, its interpreter).
LEAKING = ("AIRFLOW", "PYTHON", "VIRTUAL_ENV", "PIP_")

DAG_FILE = '''"""A DAG built from the installed wheel's operators and sensor."""

import pendulum
from airflow.sdk import DAG

from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor

URLS = [f"https://example.com/subject/{i}.jpg" for i in range(10)]

with DAG("phota_wheel_check", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    create = PhotaCreateProfileOperator(task_id="create", image_urls=URLS, tag="wheel-check")
    ready = ProfileReadySensor(task_id="ready", profile_id=create.output["profile_id"], deferrable=True)
    generate = PhotaGenerateOperator(task_id="generate", prompt="a portrait at golden hour", num_output_images=1)
    create >> ready >> generate
'''

# Parses the DAG folder the way the DAG processor does, without a metadata database.
PARSE_DAGS = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
import airflow_provider_phota

bag = DagBag(dag_folder=sys.argv[1])  # AIRFLOW__CORE__LOAD_EXAMPLES=False: no examples
tasks = {
    dag_id: {task.task_id: f"{type(task).__module__}.{type(task).__name__}" for task in dag.tasks}
    for dag_id, dag in bag.dags.items()
}
errors = {path: str(error) for path, error in bag.import_errors.items()}
print(json.dumps({"provider": airflow_provider_phota.__file__, "errors": errors, "tasks": tasks}))
"""


def _run(
    command: list[str | Path], *, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 900
) -> str:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _pin(package: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise AssertionError(f"{package} is not pinned in constraints.txt")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and the sdist, built by ``python -m build`` (uv makes its isolated build environments)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--installer", "uv", "--outdir", out, ROOT])
    wheel = out / f"{NAME}-{VERSION}-py3-none-any.whl"
    sdist = out / f"{NAME}-{VERSION}.tar.gz"
    assert sorted(out.iterdir()) == sorted([wheel, sdist])
    return wheel, sdist


def test_twine_check_accepts_the_wheel_and_the_sdist(dists: tuple[Path, Path]) -> None:
    output = _run([sys.executable, "-m", "twine", "check", "--strict", *dists])
    assert output.count("PASSED") == 2, output


def test_wheel_holds_the_package_its_license_and_entry_points_only(dists: tuple[Path, Path]) -> None:
    wheel, _ = dists
    dist_info = f"{NAME}-{VERSION}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        license_text = archive.read(f"{dist_info}/licenses/LICENSE").decode()
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()

    assert {name.split("/", 1)[0] for name in names} == {NAME, dist_info}  # no tests, benchmarks, example DAGs
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert f"{NAME}/py.typed" in names
    assert f"{NAME}/testing/pytest_plugin.py" in names
    assert license_text == (ROOT / "LICENSE").read_text()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    assert "provider_info = airflow_provider_phota.get_provider_info:get_provider_info" in entry_points
    assert "pytest11" not in entry_points  # the pytest plugin is opt-in (pytest_plugins in a conftest)
    assert "phota-emulator = airflow_provider_phota.testing.emulator.cli:main" in entry_points


def test_sdist_holds_the_sources_license_and_changelog_without_tests(dists: tuple[Path, Path]) -> None:
    _, sdist = dists
    top = f"{NAME}-{VERSION}"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}

    for required in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "setup.cfg", f"{NAME}/py.typed"):
        assert required in names, required
    assert not [name for name in names if name.startswith(("tests", "benchmarks", "scripts", "example_dags", ".ci"))]


def test_wheel_installs_beside_airflow_which_lists_the_provider_and_parses_a_dag(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    wheel, _ = dists
    venv, dags = tmp_path / "venv", tmp_path / "dags"
    env = {key: value for key, value in os.environ.items() if not key.startswith(LEAKING)}

    def in_venv(*command: str | Path) -> str:
        # from the tmp dir: `python -c` puts the working directory first on sys.path, and this checkout must not be
        return _run([*command], env=env, cwd=tmp_path)

    in_venv(UV, "venv", "--quiet", "--python", sys.executable, venv)
    # uv keeps its cache (UV_CACHE_DIR or ~/.cache/uv): a cold cache downloads Airflow once per machine
    constraints = ROOT / "constraints.txt"
    in_venv(UV, "pip", "install", "-q", "-p", venv, "--compile-bytecode", "-c", constraints, "apache-airflow", wheel)
    dags.mkdir()
    (dags / "phota_wheel_check.py").write_text(DAG_FILE)
    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
    }

    assert in_venv(venv / "bin" / "airflow", "version").strip() == _pin("apache-airflow")
    providers = json.loads(in_venv(venv / "bin" / "airflow", "providers", "list", "-o", "json"))
    assert {"package_name": "airflow-provider-phota", "version": VERSION} in [
        {key: provider[key] for key in ("package_name", "version")} for provider in providers
    ]

    parsed = json.loads(in_venv(venv / "bin" / "python", "-c", PARSE_DAGS, dags).strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert Path(parsed["provider"]).is_relative_to(venv)  # the wheel's copy, not this checkout
    assert parsed["tasks"] == {
        "phota_wheel_check": {
            "create": "airflow_provider_phota.operators.profile.PhotaCreateProfileOperator",
            "ready": "airflow_provider_phota.sensors.phota.ProfileReadySensor",
            "generate": "airflow_provider_phota.operators.images.PhotaGenerateOperator",
        }
    }


@pytest.mark.parametrize(("airflow", "allowed"), [("2.10.5", False), ("3.4.0", False), ("2.11.2", True)])
def test_the_resolver_allows_only_the_supported_airflow(
    dists: tuple[Path, Path], tmp_path: Path, airflow: str, allowed: bool
) -> None:
    """An unsupported Airflow is refused when installing, not discovered in a running task (a resolve only: uv's
    ``--dry-run`` reads the packages' metadata and installs nothing). 3.4 does not exist yet: refused as well."""
    wheel, _ = dists
    env = {key: value for key, value in os.environ.items() if not key.startswith(LEAKING)}
    _run([UV, "venv", "--quiet", "--python", sys.executable, tmp_path / "venv"], env=env, cwd=tmp_path)
    command = [UV, "pip", "install", "--dry-run", "-p", tmp_path / "venv", f"apache-airflow=={airflow}", wheel]
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    if allowed:
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        assert result.returncode != 0, result.stderr[-3000:]
        assert "apache-airflow>=2.11,<3.4" in result.stderr.replace(" ", ""), result.stderr[-3000:]
