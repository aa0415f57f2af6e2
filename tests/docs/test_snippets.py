"""Every piece of code the documentation includes parses as a DAG and runs against the emulator, on a manually
triggered run (no logical date) and on a scheduled one; the README's DAG is one of them, character for character.

Nothing here reads the pages' prose: the pages include these files (``literalinclude``), so what runs is what they
show.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dagrun_support import dag_bag, dag_test, task_states
from docs_helpers import BUNDLE, ROOT, SNIPPETS

from airflow_provider_phota.storage import path_segment
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import PhotoServer, make_subject_photos

SNIPPET_DAGS = {"phota_portraits", "phota_image_howtos", "phota_profile_lifecycle", "phota_mapped_rows"}
# docs/snippets/testing/ is a whole user project; tests/user_project runs it as written from an empty folder.
USER_PROJECT_DAGS = {"welcome_portrait"}
SCHEDULED = datetime(2026, 3, 1, tzinfo=UTC)
RUNS = {"manual": None, "scheduled": SCHEDULED}


@pytest.fixture(scope="module")
def snippet_bag(airflow_db: None) -> Any:
    return dag_bag(SNIPPETS, bundle=BUNDLE)


@pytest.fixture
def instant(phota_emulator_factory: Any, phota_connection: Any) -> PhotaEmulator:
    """An emulator on which training and jobs finish at once: the snippets keep their real poll intervals (30 s)
    and still never wait."""
    emulator = phota_emulator_factory(training_seconds=0, job_seconds=0)
    phota_connection(emulator=emulator)
    return emulator


@pytest.fixture
def photos(tmp_path: Path) -> Iterator[PhotoServer]:
    folder = tmp_path / "photos"
    make_subject_photos(folder, count=10, subject="docs-subject")
    with PhotoServer(folder) as server:
        yield server


def test_every_snippet_parses_as_a_dag(snippet_bag: Any) -> None:
    assert snippet_bag.import_errors == {}
    assert set(snippet_bag.dag_ids) == SNIPPET_DAGS | USER_PROJECT_DAGS


def test_the_readme_dag_is_the_snippet() -> None:
    text = (SNIPPETS / "phota_portraits.py").read_text()
    shown = text.split("# [START portraits]\n")[1].split("# [END portraits]")[0]
    assert f"```python\n{shown}```" in (ROOT / "README.md").read_text()


def finished(dag: Any, logical_date: datetime | None, conf: dict[str, Any]) -> Any:
    run = dag_test(dag, logical_date=logical_date, run_conf=conf)
    assert str(run.state).endswith("success"), task_states(run)
    return run


def written(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in {".png", ".jpg"})


@pytest.mark.parametrize("kind", RUNS)
def test_portraits(kind: str, snippet_bag: Any, instant: PhotaEmulator, photos: PhotoServer, tmp_path: Path) -> None:
    conf = {"photo_urls": photos.urls(), "output_uri": f"file://{tmp_path}/out", "customer_id": kind}
    run = finished(snippet_bag.get_dag("phota_portraits"), RUNS[kind], conf)
    images = written(tmp_path / "out" / path_segment(run.run_id))
    assert len(images) == 2
    assert len(instant.charges("profile")) == 1


def make_profile(emulator: PhotaEmulator, photos: PhotoServer) -> str:
    from airflow_provider_phota.hooks.phota import PhotaHook

    with PhotaHook() as hook:
        return hook.create_profile(photos.urls(), tag="docs-howto")


@pytest.mark.parametrize("kind", RUNS)
def test_image_howtos(kind: str, snippet_bag: Any, instant: PhotaEmulator, photos: PhotoServer, tmp_path: Path) -> None:
    profile_id = make_profile(instant, photos)
    photo = sorted(Path(photos.folder).glob("*.jpg"))
    conf = {
        "profile_id": profile_id,
        "photo": str(photo[0]),
        "style": f"file://{photo[1]}",
        "output_uri": f"file://{tmp_path}/out",
    }
    run = finished(snippet_bag.get_dag("phota_image_howtos"), RUNS[kind], conf)
    folder = tmp_path / "out" / path_segment(run.run_id)
    for task_id, count in {"generate": 2, "edit": 1, "enhance": 1, "remix": 1}.items():
        assert len(written(folder / task_id)) == count, task_id


@pytest.mark.parametrize("kind", RUNS)
def test_profile_lifecycle(kind: str, snippet_bag: Any, instant: PhotaEmulator, photos: PhotoServer) -> None:
    conf = {"photo_urls": photos.urls(), "subject": f"docs-{kind}"}
    finished(snippet_bag.get_dag("phota_profile_lifecycle"), RUNS[kind], conf)
    assert len(instant.charges("profile")) == 1  # the second create reused the tag's profile
    assert not instant.profiles  # and the delete removed it


@pytest.mark.parametrize("kind", RUNS)
def test_mapped_rows(kind: str, snippet_bag: Any, instant: PhotaEmulator, tmp_path: Path) -> None:
    run = finished(snippet_bag.get_dag("phota_mapped_rows"), RUNS[kind], {"output_uri": f"file://{tmp_path}/out"})
    assert len(written(tmp_path / "out" / path_segment(run.run_id))) == 2


def test_hook_usage(instant: PhotaEmulator, photos: PhotoServer, tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("hook_usage", SNIPPETS / "hook_usage.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    make_profile(instant, photos)
    destination = tmp_path / "portrait.png"
    assert module.portrait_of("docs-howto", str(destination)) == str(destination)
    assert destination.stat().st_size > 0
    assert len(instant.charges("images")) == 1  # one paid generate
