"""The example DAGs: they import cleanly, and each runs end to end against the emulator with real outputs."""

from __future__ import annotations

import ast
import importlib.util
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow_versions import AIRFLOW_2
from dagrun_support import asset_event_extras, dag_bag, dag_test, return_value, task_states
from PIL import Image

from airflow_provider_phota import results, storage
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import PhotoServer, make_subject_photos

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
AIRFLOW_3_ONLY = {"phota_welcome_pack"}  # scheduled by an AssetWatcher: event-driven scheduling is Airflow 3
EXPECTED_DAGS = {"phota_subject_pipeline", "phota_scheduled_retraining", "phota_marketing_batch"} | (
    set() if AIRFLOW_2 else AIRFLOW_3_ONLY
)


AIRFLOW_2_IMPORTS = EXAMPLES.parent / "docs" / "snippets" / "airflow2-imports.diff"  # docs/installing.md shows it


def airflow_2_import_lines() -> dict[str, list[str]]:
    """The documented diff of the example DAGs' import lines between Airflow 3 and 2.11: each ``-`` line and the
    ``+`` lines that replace it."""
    replacements: dict[str, list[str]] = {}
    current = ""
    for line in AIRFLOW_2_IMPORTS.read_text().splitlines():
        if line.startswith("-"):
            current = line[1:].strip()
            replacements[current] = []
        elif line.startswith("+"):
            replacements[current].append(line[1:].strip())
    return replacements


def written_the_airflow_2_way(folder: Path) -> Path:
    """Copies of the example DAGs with the documented Airflow 2.11 import lines, and nothing else changed."""
    replacements = airflow_2_import_lines()
    folder.mkdir()
    for path in EXAMPLES.glob("*.py"):
        if path.stem in AIRFLOW_3_ONLY:
            continue
        lines = []
        for line in path.read_text().splitlines():
            stripped = line.strip()
            indent = line[: len(line) - len(line.lstrip())]
            if stripped.startswith("from airflow.sdk"):  # what Airflow 2 lacks; other imports stay as they are
                assert stripped in replacements, f"{path.name}: {AIRFLOW_2_IMPORTS.name} lacks {stripped!r} for 2.11"
                lines += [indent + new for new in replacements[stripped]]
            else:
                lines.append(line)
        (folder / path.name).write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def example_bag(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The example DAGs (tests/conftest.py declares their folder as a DAG bundle, so dag.test() can run them);
    on Airflow 2.11 the same pipelines with the 2.x import lines."""
    if AIRFLOW_2:
        return dag_bag(written_the_airflow_2_way(tmp_path_factory.mktemp("airflow2") / "example_dags"))
    return dag_bag(EXAMPLES, bundle="example-dags")


def test_example_dags_import_without_errors(example_bag: Any) -> None:
    assert example_bag.import_errors == {}
    assert set(example_bag.dag_ids) == EXPECTED_DAGS
    for dag_id in EXPECTED_DAGS:
        assert "phota" in example_bag.get_dag(dag_id).tags


@pytest.fixture
def photos(tmp_path: Path) -> Iterator[tuple[Path, PhotoServer]]:
    folder = tmp_path / "photos"
    make_subject_photos(folder, count=10, subject="example-subject")
    with PhotoServer(folder) as server:
        yield folder, server


@pytest.fixture
def example_env(phota_conn_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTA_EXAMPLE_POLL_SECONDS", "0.2")


def test_subject_pipeline(
    airflow_db: None,
    example_env: None,
    example_bag: Any,
    phota_emulator: PhotaEmulator,
    photos: tuple[Path, PhotoServer],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dag = example_bag.get_dag("phota_subject_pipeline")
    folder, server = photos
    conf = {
        "photos_uri": str(folder),
        "photos_base_url": server.base_url,
        "output_uri": f"file://{tmp_path}/out",
        "publish_uri": f"file://{tmp_path}/pub",
        "subject": "example-subject",
    }
    run = dag_test(dag, run_conf=conf)
    assert str(run.state).endswith("success")
    output = "".join(capfd.readouterr())
    assert "XCom not found" not in output  # the skipped branch's XCom is never looked up (the demo printed it)
    (manifest_path,) = (tmp_path / "pub").glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert len(manifest["images"]) == 7  # 3 styles x 2 variations + the enhanced best
    for entry in manifest["images"]:
        path = Path(entry["uri"].removeprefix("file://"))
        assert path.stat().st_size == entry["bytes"]
        with Image.open(path) as image:
            assert image.size == (2048, 1536)  # 4:3 at 2K; the enhanced one keeps its input's ratio
    (profile_id,) = phota_emulator.profiles
    for entry in manifest["images"]:
        assert entry["known_subjects"] == {profile_id: 2 if entry["kind"] == "variation" else 1}
    # Training used the served photos, the profile was charged once, and the sensor deferred (more than one poll).
    assert len(phota_emulator.charges("profile")) == 1
    assert len(phota_emulator.requests_to("/v1/phota/profiles/*/status", "GET")) > 1


def test_scheduled_retraining_switches_only_after_ready(
    airflow_db: None,
    example_env: None,
    example_bag: Any,
    phota_emulator: PhotaEmulator,
    photos: tuple[Path, PhotoServer],
) -> None:
    from airflow.models.variable import Variable

    dag = example_bag.get_dag("phota_scheduled_retraining")
    folder, server = photos
    conf = {"photos_uri": str(folder), "photos_base_url": server.base_url, "subject": "weekly"}
    first = dag_test(dag, run_conf=conf)
    assert str(first.state).endswith("success")
    first_profile = Variable.get("phota_profile__weekly")
    assert phota_emulator.profile_status(first_profile) == "READY"

    second = dag_test(dag, run_conf=conf)
    assert str(second.state).endswith("success")
    second_profile = Variable.get("phota_profile__weekly")
    assert second_profile != first_profile
    assert first_profile not in phota_emulator.profiles  # deleted after the switch
    assert task_states(second)["delete_replaced_profile[0]"] == "success"
    (event,) = asset_event_extras(second, "phota://examples/profiles/demo-subject")
    assert event["profile_id"] == second_profile


def test_failed_retraining_keeps_the_current_profile(
    airflow_db: None,
    example_env: None,
    example_bag: Any,
    phota_emulator: PhotaEmulator,
    photos: tuple[Path, PhotoServer],
) -> None:
    from airflow.models.variable import Variable

    dag = example_bag.get_dag("phota_scheduled_retraining")
    folder, server = photos
    Variable.set("phota_profile__failing", "prof_current")
    # A photo named with the emulator's marker makes training end in ERROR.
    (folder / "x-phota-training-error.jpg").write_bytes((folder / "example-subject-00.jpg").read_bytes())
    run = dag_test(dag, run_conf={"photos_uri": str(folder), "photos_base_url": server.base_url, "subject": "failing"})

    states = task_states(run)
    assert states["train_profile"] == "failed"
    assert states["switch_profile"] != "success"
    assert states["delete_failed_training"] == "success"
    assert str(run.state).endswith("failed")
    assert Variable.get("phota_profile__failing") == "prof_current"
    assert len(phota_emulator.charges("profile")) == 1
    assert phota_emulator.profiles == {}  # the training that ended in ERROR was deleted


RETRAINING_TASKS = 9  # the tasks of phota_scheduled_retraining, the mapped delete counted once


def test_retraining_under_catchup_clears_and_a_failed_night(
    airflow_db: None,
    example_env: None,
    example_bag: Any,
    phota_emulator: PhotaEmulator,
    photos: tuple[Path, PhotoServer],
) -> None:
    """Four scheduled weeks caught up (the third one's training ends in ERROR), then the oldest, the newest, the
    failed and the middle run cleared: the Variable only moves forward, nothing older than the profile in use
    trains again, and the only profile left is the newest run's."""
    from airflow.models.variable import Variable

    dag = example_bag.get_dag("phota_scheduled_retraining")
    folder, server = photos
    conf = {"photos_uri": str(folder), "photos_base_url": server.base_url, "subject": "catchup"}
    weeks = [datetime(2026, 1, 4, tzinfo=UTC) + timedelta(weeks=n) for n in range(4)]  # @weekly: Sunday midnight
    error_photo = folder / "x-phota-training-error.jpg"

    def run(week: int, *, failing: bool = False) -> Any:
        if failing:
            error_photo.write_bytes((folder / "example-subject-00.jpg").read_bytes())
        try:
            return dag_test(dag, logical_date=weeks[week], run_conf=conf)
        finally:
            error_photo.unlink(missing_ok=True)

    def in_use() -> str:
        return str(Variable.get("phota_profile__catchup"))

    def trained_by(week: int) -> str:
        return str(return_value(runs[week], "train_profile"))  # the result dict, as XCom renders it

    runs = [run(0), run(1), run(2, failing=True), run(3)]

    assert [str(r.state).rsplit(".", 1)[-1] for r in runs] == ["success", "success", "failed", "success"]
    assert task_states(runs[2])["delete_failed_training"] == "success"
    assert len(phota_emulator.charges("profile")) == 4  # three READY trainings and the one that ended in ERROR
    (profile_id,) = phota_emulator.profiles  # weeks 0 and 1 replaced, week 2's ERROR profile deleted
    assert phota_emulator.profiles[profile_id].tag.startswith("catchup-")
    assert phota_emulator.profiles[profile_id].status == "READY"
    assert in_use() == profile_id
    assert profile_id in trained_by(3)
    creates = len(phota_emulator.requests_to("/v1/phota/profiles/add", "POST"))

    for week in (0, 3, 2, 1):  # the oldest, the newest, the failed one (its photos fixed now), the middle
        cleared = run(week)

        states = task_states(cleared)
        assert str(cleared.state).endswith("success"), states
        assert in_use() == profile_id
        assert set(phota_emulator.profiles) == {profile_id}
        if week == 3:  # the run whose profile is in use: it finds its own training, and switches nothing
            assert states["train_profile"] == "success"
            assert states["switch_profile"] == "success"
            assert states["announce_profile"] == "skipped"
        else:  # older than the profile in use: stopped before training
            assert states["newer_than_profile_in_use"] == "success"
            assert {task for task, state in states.items() if state != "skipped"} == {"newer_than_profile_in_use"}
        assert len(states) <= RETRAINING_TASKS

    assert len(phota_emulator.charges("profile")) == 4  # no clear paid for a training
    assert len(phota_emulator.requests_to("/v1/phota/profiles/add", "POST")) == creates
    assert not phota_emulator.requests_to("/v1/phota/profiles/" + profile_id, "DELETE")


class _Variables:
    """Airflow's Variable API over a dict: outside a task, the Task SDK's Variable has no API server to talk to."""

    store: dict[str, str] = {}

    @classmethod
    def get(cls, key: str, default: Any = None) -> Any:
        return cls.store.get(key, default)

    @classmethod
    def set(cls, key: str, value: str) -> None:
        cls.store[key] = value


@pytest.mark.skipif(AIRFLOW_2, reason="the example as written imports Variable from airflow.sdk (Airflow 3)")
def test_retraining_switch_under_concurrent_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The switch's rule, with runs interleaved as a deployment with max_active_runs > 1 can: a run overtaken while
    it trained never switches back and deletes only its own profile; a hand-set Variable counts as older."""
    import airflow.sdk

    monkeypatch.setattr(airflow.sdk, "Variable", _Variables)
    monkeypatch.setattr(_Variables, "store", {})
    Variable = _Variables
    spec = importlib.util.spec_from_file_location("retraining_example", EXAMPLES / "phota_scheduled_retraining.py")
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    Variable.set("phota_profile__race", "prof_by_hand")

    assert example.is_not_older("race", "2026-02-08T00:00:00.000000Z")  # no time stored: any run is newer
    assert example.is_not_older("race", "2026-02-15T00:00:00.000000Z")
    # Both runs passed the check and trained; the later one (15th) switches first.
    assert example.switch("race", "prof_15", "2026-02-15T00:00:00.000000Z") == (True, ["prof_by_hand"])
    assert example.switch("race", "prof_08", "2026-02-08T00:00:00.000000Z") == (False, ["prof_08"])
    assert example.switch("race", "prof_15", "2026-02-15T00:00:00.000000Z") == (False, [])  # its retry
    assert not example.is_not_older("race", "2026-02-08T00:00:00.000000Z")  # a clear of the 8th stops early
    assert example.is_not_older("race", "2026-02-15T00:00:00.000000Z")
    assert example.switch("race", "prof_22", "2026-02-22T00:00:00.000000Z") == (True, ["prof_15"])
    assert Variable.get("phota_profile__race") == "prof_22"
    assert Variable.get("phota_profile_as_of__race") == "2026-02-22T00:00:00.000000Z"


def test_marketing_batch_renders_the_campaign_in_one_task_and_emits_one_asset_event(
    airflow_db: None, example_env: None, example_bag: Any, phota_emulator: PhotaEmulator, tmp_path: Path
) -> None:
    from airflow_provider_phota.hooks.phota import PhotaHook

    profile_id = PhotaHook().create_profile([f"https://example.com/b/{i}.jpg" for i in range(10)], tag="brand-face")
    phota_emulator.advance(phota_emulator.training_seconds + 1)
    campaign = tmp_path / "campaign.csv"
    campaign.write_text(
        "profile_tag,prompt,aspect_ratio,resolution,count\n"
        "brand-face,{subject} holding our new mug,1:1,1K,2\n"
        "brand-face,Billboard of a city street,16:9,2K,1\n"
        "brand-face,{subject} on a beach,9:16,1K,3\n"
    )
    run = dag_test(
        example_bag.get_dag("phota_marketing_batch"),
        run_conf={"campaign_uri": str(campaign), "output_uri": f"file://{tmp_path}/campaigns"},
    )
    assert str(run.state).endswith("success")
    assert [ti.task_id for ti in run.get_task_instances()] == ["render"]
    (manifest_path,) = (tmp_path / "campaigns").glob("*/render-manifest.json")
    manifest = json.loads(manifest_path.read_text())
    renders = manifest["rows"]
    assert [r["count"] for r in renders] == [2, 1, 3]
    assert manifest["known_subjects"] == {profile_id: 6}
    sizes = [(1024, 1024), (2048, 1152), (576, 1024)]
    for render, size in zip(renders, sizes, strict=True):
        assert render["known_subjects"] == {profile_id: render["count"]}
        for uri in render["output_uris"]:
            assert uri.startswith(f"file://{manifest_path.parent}/")
            with Image.open(uri.removeprefix("file://")) as image:
                assert image.size == size
                assert image.format == "JPEG"
    prompts = [r.json["prompt"] for r in phota_emulator.requests_to("/v1/phota/generate", "POST")]
    assert len(prompts) == 3
    assert all(f"[[{profile_id}]]" in prompt for prompt in prompts)
    assert len(phota_emulator.charges("images")) == 3
    (event,) = asset_event_extras(run, "phota://examples/marketing/renders")
    assert event["images"] == 6
    assert event["rows"] == 3
    assert event["manifest_uri"] == f"file://{manifest_path}"


# What the example DAGs may import from the provider: its documented public API.
PUBLIC_API = {
    "airflow_provider_phota.operators.images": {
        "PhotaEditOperator",
        "PhotaGenerateOperator",
        "PhotaEnhanceOperator",
        "PhotaRemixOperator",
    },
    "airflow_provider_phota.operators.batch": {"PhotaBatchOperator"},
    "airflow_provider_phota.operators.profile": {"PhotaCreateProfileOperator", "PhotaDeleteProfileOperator"},
    "airflow_provider_phota.sensors.phota": {"ProfileReadySensor"},
    "airflow_provider_phota.triggers.events": {"PhotaProfileReadyEventTrigger"},  # for AssetWatcher
    "airflow_provider_phota.hooks.phota": {"PhotaHook"},
    "airflow_provider_phota.results": set(results.__all__),
    "airflow_provider_phota.storage": set(storage.__all__),
}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name)
def test_example_dags_use_only_the_public_api(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [(alias.name, "") for alias in node.names if alias.name.startswith("airflow_provider_phota")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airflow_provider_phota"):
            imported += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "hook":
            assert not node.attr.startswith("_"), f"{path.name} uses PhotaHook.{node.attr}"

    assert imported
    for module, name in imported:
        assert name in PUBLIC_API.get(module, set()), f"{path.name} imports {name or module} from {module}"
