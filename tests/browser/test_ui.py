"""The provider in the Airflow UI a person clicks: the human pick, the "Phota outputs" gallery, the connection form.

One deployment and one pipeline run serve every test (see conftest.py): the subject-pipeline example runs with
``human_pick`` on against the emulator; the run stops at the question, a person (the browser, logged in as admin)
answers it on the task's "Required Action" page, and the run enhances and publishes that variation. The gallery
tests then look at that finished run: seven images (six variations and the enhanced one).
"""

from __future__ import annotations

import base64
import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from browser_helpers import DAG_ID, USERS, Session, log_in_through_ui
from deployment_helpers import AirflowDeployment

from airflow_provider_phota.get_provider_info import connection_type_info
from airflow_provider_phota.plugins.gallery import RUN_VIEW_ROUTE, TASK_VIEW_ROUTE, URL_PREFIX
from airflow_provider_phota.plugins.thumbnails import MAX_THUMBNAIL_BYTES
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import PhotoServer

pytestmark = pytest.mark.browser

RUN_TIMEOUT = 240.0
WAITING_STATES = ("awaiting_input", "deferred")  # 3.3+ parks the HITL task; 3.1-3.2 defer it to the triggerer
EXPECTED_IMAGES = 7  # 3 styles x 2 variations + the enhanced pick


def shot(session: Session, screenshots: Path, name: str) -> Path:
    path = screenshots / f"{name}.png"
    session.page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
def pipeline_run(deployment: AirflowDeployment, photos: PhotoServer, workdir: Path) -> dict[str, Any]:
    """The example triggered with human_pick on, waiting for its question."""
    airflow = deployment

    def parsed() -> dict[str, Any] | None:
        try:
            return dict(airflow.api("GET", f"/dags/{DAG_ID}"))
        except requests.HTTPError:
            return None

    try:
        airflow.wait_for(f"the DAG processor to parse {DAG_ID}", parsed, 90)
    except AssertionError as error:
        raise AssertionError(f"{error}\nimport errors: {airflow.import_errors()}") from None
    conf = {
        "photos_uri": str(workdir / "photos"),
        "photos_base_url": photos.base_url,
        "output_uri": f"file://{workdir}/out",
        "publish_uri": f"file://{workdir}/pub",
        "subject": "browser-subject",
        "human_pick": True,
    }
    run = airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    run_id = run["dag_run_id"]

    def asking() -> dict[str, Any] | None:
        tis = airflow.task_instances(DAG_ID, run_id)
        failed = {task: ti["state"] for task, ti in tis.items() if ti["state"] in ("failed", "upstream_failed")}
        if failed:
            raise airflow.fail(f"tasks failed before the question: {failed}")
        ask = tis.get("ask_for_pick")
        return ask if ask and ask["state"] in WAITING_STATES else None

    airflow.wait_for("the human-pick question", asking, RUN_TIMEOUT)
    return {"run_id": run_id, "workdir": workdir}


def variation_uris(deployment: AirflowDeployment, run_id: str) -> list[str]:
    """The variations in the question's order (map index, then position)."""
    uris = []
    for index in range(3):
        entry = deployment.api(
            "GET",
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/generate_variations/xcomEntries/return_value",
            params={"map_index": index},
        )
        value = entry["value"]
        uris += (json.loads(value) if isinstance(value, str) else value)["output_uris"]
    return uris


def xcom(deployment: AirflowDeployment, run_id: str, task_id: str) -> Any:
    """A task's ``return_value`` as Python. JSON text is decoded until it is not text any more: Airflow 3.1's REST
    API stores a PATCHed value JSON-encoded twice."""
    entry = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
    value = entry["value"]
    for _ in range(2):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except ValueError:
            break
    return value


@pytest.fixture(scope="module")
def human_pick(
    browser: Any, deployment: AirflowDeployment, pipeline_run: dict[str, Any], screenshots: Path
) -> Iterator[dict[str, Any]]:
    """A person answers the question in the UI with a variation the automatic pick would not take (the smallest
    file); the run then finishes."""
    run_id = pipeline_run["run_id"]
    uris = variation_uris(deployment, run_id)
    sizes = [Path(uri.removeprefix("file://")).stat().st_size for uri in uris]
    choice = sizes.index(min(sizes))
    assert sizes[choice] != max(sizes), "all variations have one size: the automatic pick would be the same"
    label = f"Variation {choice + 1}"

    session = log_in_through_ui(browser, deployment, "admin")
    page = session.page
    page.goto(f"{deployment.base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/ask_for_pick/required_actions")
    page.get_by_text("Which variation of browser-subject").wait_for()
    page.get_by_text("Phota outputs gallery").wait_for()
    question = shot(session, screenshots, "human-pick-question")
    page.get_by_role("combobox").click(force=True)
    page.get_by_role("option", name=label, exact=True).click()
    answered = shot(session, screenshots, "human-pick-answered")
    page.get_by_role("button", name="Respond").click()

    def finished() -> dict[str, Any] | None:
        state = deployment.dag_run(DAG_ID, run_id)["state"]
        if state == "failed":
            raise deployment.fail(f"run failed after the answer: {deployment.task_instances(DAG_ID, run_id)}")
        return {"state": state} if state == "success" else None

    deployment.wait_for("the run to finish after the answer", finished, RUN_TIMEOUT)
    yield {"run_id": run_id, "label": label, "chosen": uris[choice], "uris": uris, "screenshots": [question, answered]}
    session.context.close()


def test_human_pick_answered_in_the_ui_is_the_variation_published(
    human_pick: dict[str, Any], deployment: AirflowDeployment, emulator: PhotaEmulator
) -> None:
    run_id, chosen = human_pick["run_id"], human_pick["chosen"]
    states = {task: ti["state"] for task, ti in deployment.task_instances(DAG_ID, run_id).items()}
    assert states["pick_best"] == "skipped", states
    assert states["ask_for_pick"] == "success", states
    answer = xcom(deployment, run_id, "ask_for_pick")
    assert answer["chosen_options"] == [human_pick["label"]]
    assert answer["responded_by_user"]["name"] == "admin"
    assert xcom(deployment, run_id, "chosen_variation") == chosen
    # The enhancement paid for is of that file: the one enhance request carried its bytes.
    (enhance,) = emulator.requests_to("*/enhance*", "POST")
    sent = json.dumps(enhance.json)
    assert base64.b64encode(Path(chosen.removeprefix("file://")).read_bytes()).decode() in sent
    # ... and the published manifest has it as the final image's source.
    published = xcom(deployment, run_id, "publish")
    manifest = json.loads(Path(published["manifest_uri"].removeprefix("file://")).read_text())
    finals = [entry for entry in manifest["images"] if entry["kind"] == "final"]
    assert len(finals) == 1
    assert Path(finals[0]["uri"].removeprefix("file://")).exists()
    enhanced = xcom(deployment, run_id, "enhance_best")
    assert finals[0]["source_uri"] == enhanced["output_uris"][0]
    for path in human_pick["screenshots"]:
        assert path.stat().st_size > 0


def gallery_path(run_id: str, suffix: str = "gallery") -> str:
    return f"{URL_PREFIX}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/{suffix}"


def test_gallery_tab_shows_every_output_as_a_decoded_thumbnail(
    admin: Session, deployment: AirflowDeployment, human_pick: dict[str, Any], screenshots: Path
) -> None:
    run_id = human_pick["run_id"]
    page = admin.page
    transferred: dict[str, int] = {}

    def record(response: Any) -> None:
        if f"{URL_PREFIX}/" in response.url:
            transferred[response.url] = len(response.body())

    page.on("response", record)
    page.goto(f"{deployment.base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/plugin/{RUN_VIEW_ROUTE}")
    frame = page.frame_locator("iframe")
    frame.get_by_text(f"{EXPECTED_IMAGES} images").wait_for()
    images = frame.locator("figure.card img")
    assert images.count() == EXPECTED_IMAGES
    for index in range(EXPECTED_IMAGES):
        images.nth(index).scroll_into_view_if_needed()
    deadline = time.monotonic() + 30
    while True:
        widths = images.evaluate_all("imgs => imgs.map(img => img.complete ? img.naturalWidth : 0)")
        if all(width > 0 for width in widths) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert all(width > 0 for width in widths), widths
    images.first.scroll_into_view_if_needed()
    shot(admin, screenshots, "gallery-run-tab")

    # Every output has its card with task, prompt, size and model; the chosen variation is among them.
    cards = frame.locator("figure.card")
    uris = cards.evaluate_all("cards => cards.map(card => card.dataset.uri)")
    assert set(human_pick["uris"]) <= set(uris)
    assert len(set(uris)) == EXPECTED_IMAGES
    text = frame.locator("main").inner_text()
    assert "generate_variations [0]" in text
    assert "enhance_best" in text
    assert "2048 x 1536 px" in text
    assert "2K 4:3" in text
    assert "natural skin texture" in text

    # What the page weighs: the page and its thumbnails, each within the limit; no full image was loaded.
    thumbnails = {url: size for url, size in transferred.items() if "/thumbnail?" in url}
    assert len(thumbnails) == EXPECTED_IMAGES
    assert all(size <= MAX_THUMBNAIL_BYTES for size in thumbnails.values()), thumbnails
    assert not [url for url in transferred if "/image?" in url]
    weight = {
        "images": EXPECTED_IMAGES,
        "page_bytes": sum(size for url, size in transferred.items() if "/gallery" in url),
        "thumbnail_bytes": sum(thumbnails.values()),
        "largest_thumbnail_bytes": max(thumbnails.values()),
        "originals_bytes": sum(Path(uri.removeprefix("file://")).stat().st_size for uri in uris),
    }
    (screenshots / "gallery-weight.json").write_text(json.dumps(weight, indent=1))
    print(f"\ngallery page weight: {weight}")

    # A click opens the full image over the page, streamed whole from storage.
    with page.expect_response(lambda response: "/image?" in response.url) as original:
        frame.locator("figure.card a").first.click()
    assert original.value.status == 200
    assert original.value.body() == Path(uris[0].removeprefix("file://")).read_bytes()
    viewer = frame.locator(".viewer:target img")
    viewer.wait_for()
    deadline = time.monotonic() + 30
    while viewer.evaluate("img => img.complete ? img.naturalWidth : 0") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert viewer.evaluate("img => img.naturalWidth") == 2048
    shot(admin, screenshots, "gallery-full-image")


def test_gallery_for_one_task_instance(
    admin: Session, deployment: AirflowDeployment, human_pick: dict[str, Any], screenshots: Path
) -> None:
    page = admin.page
    page.goto(deployment.base_url + gallery_path(human_pick["run_id"]) + "?task_id=generate_variations&map_index=1")
    cards = page.locator("figure.card")
    cards.first.wait_for()
    assert cards.count() == 2
    assert set(page.locator("figure.card .task").all_inner_texts()) == {
        "#3 · generate_variations [1] · image 1",
        "#4 · generate_variations [1] · image 2",
    }
    shot(admin, screenshots, "gallery-task-instance")


def test_gallery_refuses_anonymous_and_users_without_access(
    browser: Any, deployment: AirflowDeployment, human_pick: dict[str, Any], screenshots: Path
) -> None:
    run_id, uri = human_pick["run_id"], human_pick["chosen"]
    routes = [gallery_path(run_id), f"{gallery_path(run_id, 'thumbnail')}?uri={quote(uri, safe='')}"]
    routes.append(f"{gallery_path(run_id, 'image')}?uri={quote(uri, safe='')}")
    routes.append(f"{gallery_path(run_id, 'image')}?uri={quote('file:///etc/passwd', safe='')}")

    anonymous = browser.new_context()
    page = anonymous.new_page()
    for route in routes:
        response = page.goto(deployment.base_url + route)
        assert response is not None
        assert response.status == 401, route
    page.screenshot(path=str(screenshots / "gallery-anonymous-401.png"))
    anonymous.close()

    outsider = log_in_through_ui(browser, deployment, "outsider")
    for route in routes:
        response = outsider.page.goto(deployment.base_url + route)
        assert response is not None
        assert response.status == 403, route
    shot(outsider, screenshots, "gallery-outsider-403")
    outsider.context.close()

    viewer = log_in_through_ui(browser, deployment, "viewer")  # a read-only user may look
    response = viewer.page.goto(deployment.base_url + routes[0])
    assert response is not None
    assert response.status == 200
    assert viewer.page.locator("figure.card").count() == EXPECTED_IMAGES
    viewer.context.close()


def test_gallery_serves_only_the_runs_recorded_outputs(
    admin: Session, deployment: AirflowDeployment, human_pick: dict[str, Any], screenshots: Path
) -> None:
    run_id, uri = human_pick["run_id"], human_pick["chosen"]
    recorded = Path(uri.removeprefix("file://"))
    stray = recorded.parent / "stray-not-recorded.png"  # a real image beside the outputs, not in any XCom
    stray.write_bytes(recorded.read_bytes())
    image, thumbnail = gallery_path(run_id, "image"), gallery_path(run_id, "thumbnail")
    crafted = [
        f"file://{stray}",
        "file:///etc/passwd",
        f"file://{recorded.parent}/../variations/{recorded.name}",
        f"file://{recorded.parent}/./{recorded.name}",
        f"file://{recorded}/",
        f"{uri}%00.png",
        uri.replace("file://", "file:"),
        uri.upper(),
        str(recorded),
        f"FILE://{recorded}",
    ]
    request = admin.context.request
    for route in (image, thumbnail):
        for value in crafted:
            for encoded in (quote(value, safe=""), quote(quote(value, safe=""), safe=""), quote(value, safe="/:")):
                response = request.get(f"{deployment.base_url}{route}?uri={encoded}")
                assert response.status == 404, (route, value, encoded, response.status)
        for tail in ("/..%2F..%2F..%2Fetc%2Fpasswd", "/%2e%2e/%2e%2e/etc/passwd"):
            response = request.get(f"{deployment.base_url}{route}{tail}")
            assert response.status == 404, (route, tail, response.status)
    other_run = gallery_path("manual__not-a-run", "image") + f"?uri={quote(uri, safe='')}"
    assert request.get(deployment.base_url + other_run).status == 404

    # The recorded URI itself is served, whole.
    response = request.get(f"{deployment.base_url}{image}?uri={quote(uri, safe='')}")
    assert response.status == 200
    assert response.body() == recorded.read_bytes()
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith("inline;")
    small = request.get(f"{deployment.base_url}{thumbnail}?uri={quote(uri, safe='')}")
    assert small.status == 200
    assert small.headers["content-type"] == "image/jpeg"
    assert small.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert small.headers["x-content-type-options"] == "nosniff"
    admin.page.goto(f"{deployment.base_url}{image}?uri={quote(f'file://{stray}', safe='')}")
    shot(admin, screenshots, "gallery-crafted-404")


def load_tab(session: Session, deployment: AirflowDeployment, path: str) -> list[int]:
    """Open a plugin tab in the Airflow UI and wait for its frame's thumbnails to decode; their natural widths."""
    session.page.goto(deployment.base_url + path)
    frame = session.page.frame_locator("iframe")
    frame.locator("figure.card img").first.wait_for(timeout=30_000)
    images = frame.locator("figure.card img")
    deadline = time.monotonic() + 30
    while True:
        widths: list[int] = images.evaluate_all("imgs => imgs.map(img => img.complete ? img.naturalWidth : 0)")
        if all(widths) or time.monotonic() > deadline:
            return widths
        time.sleep(0.2)


def test_task_instance_tab_loads_for_unmapped_and_mapped_tasks(
    admin: Session, deployment: AirflowDeployment, human_pick: dict[str, Any], screenshots: Path
) -> None:
    """The UI fills ``{MAP_INDEX}`` only on a mapped task's routes: an unmapped task's tab must still load."""
    run = f"/dags/{DAG_ID}/runs/{quote(human_pick['run_id'], safe='')}"
    widths = load_tab(admin, deployment, f"{run}/tasks/enhance_best/plugin/{TASK_VIEW_ROUTE}")
    assert len(widths) == 1
    assert all(widths), widths
    frame = admin.page.frame_locator("iframe")
    assert "enhance_best" in frame.locator("figure.card .task").first.inner_text()
    shot(admin, screenshots, "gallery-task-tab-unmapped")

    widths = load_tab(admin, deployment, f"{run}/tasks/generate_variations/mapped/1/plugin/{TASK_VIEW_ROUTE}")
    assert len(widths) == 2
    assert all(widths), widths
    assert set(frame.locator("figure.card .task").all_inner_texts()) == {
        "#3 · generate_variations [1] · image 1",
        "#4 · generate_variations [1] · image 2",
    }
    shot(admin, screenshots, "gallery-task-tab-mapped")


def as_user(deployment: AirflowDeployment, username: str) -> requests.Session:
    """A REST client acting as ``username`` (its own bearer token)."""
    answer = requests.post(
        f"{deployment.base_url}/auth/token",
        json={"username": username, "password": USERS[username][1]},
        timeout=10,
    )
    answer.raise_for_status()
    client = requests.Session()
    client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return client


def test_xcom_written_through_the_rest_api_by_a_user_cannot_make_the_gallery_serve_a_file(
    browser: Any, deployment: AirflowDeployment, human_pick: dict[str, Any], workdir: Path, screenshots: Path
) -> None:
    """Airflow's `user` role writes XCom through the REST API. Recorded as a run's Phota output, a server file
    (airflow.cfg holds the JWT secret and the Fernet key), a file of another DAG, an SVG, a text file named .png
    and a symlink to airflow.cfg, even inside the task's own output folder, are 404 with no bytes."""
    run_id = human_pick["run_id"]
    final = Path(xcom(deployment, run_id, "enhance_best")["output_uris"][0].removeprefix("file://"))
    config = workdir / "airflow-home" / "airflow.cfg"
    assert b"fernet_key" in config.read_bytes()
    other_dag = workdir / "other-dag-out" / "secret-campaign.png"  # another DAG's output: a real image
    other_dag.parent.mkdir(exist_ok=True)
    other_dag.write_bytes(final.read_bytes())
    svg = final.parent / "planted.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"><script>1</script></svg>')
    named_png = final.parent / "config-copy.png"
    named_png.write_bytes(config.read_bytes())
    link = final.parent / "config-link.png"
    link.unlink(missing_ok=True)
    link.symlink_to(config)
    planted = [config, other_dag, svg, named_png, link, Path("/etc/passwd")]
    planted_uris = [f"file://{path}" for path in planted]

    author = as_user(deployment, "author")
    base = f"{deployment.base_url}/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances"
    # POST: a new result on a task that wrote nothing (skipped), PATCH: the enhancement's real result extended.
    forged = {"endpoint": "generate", "count": len(planted), "output_uris": planted_uris, "cost_usd": 0.0}
    created = author.post(f"{base}/pick_best/xcomEntries", json={"key": "return_value", "value": forged}, timeout=10)
    assert created.status_code == 201, created.text
    original = xcom(deployment, run_id, "enhance_best")
    extended = {**original, "output_uris": [*original["output_uris"], *planted_uris]}
    patched = author.patch(f"{base}/enhance_best/xcomEntries/return_value", json={"value": extended}, timeout=10)
    assert patched.status_code == 200, patched.text
    assert xcom(deployment, run_id, "enhance_best") == extended
    try:
        secrets = [config.read_bytes(), b"fernet_key", b"<svg", b"root:x:0:0"]
        for route in ("image", "thumbnail"):
            for uri in planted_uris:
                answer = author.get(f"{deployment.base_url}{gallery_path(run_id, route)}", params={"uri": uri})
                assert answer.status_code == 404, (route, uri, answer.status_code)
                assert not [secret for secret in secrets if secret in answer.content], (route, uri)
                assert not answer.headers.get("content-type", "").startswith("image/"), (route, uri)
        # The page lists nothing outside the task's output folder; what was planted inside it (claimed, so listed,
        # as any XCom reader sees it) has a card with no picture; every real output still shows.
        session = log_in_through_ui(browser, deployment, "author")
        session.page.goto(deployment.base_url + gallery_path(run_id))
        cards = session.page.locator("figure.card")
        uris = cards.evaluate_all("cards => cards.map(card => card.dataset.uri)")
        inside = {f"file://{path}" for path in (svg, named_png, link)}
        assert set(uris) - set(planted_uris) == set(human_pick["uris"]) | set(original["output_uris"])
        assert set(uris) & set(planted_uris) == inside
        pictured = cards.evaluate_all(
            "cards => cards.filter(card => card.querySelector('img')).map(c => c.dataset.uri)"
        )
        assert len(pictured) == EXPECTED_IMAGES
        assert not set(pictured) & set(planted_uris)
        answer = session.context.request.get(
            f"{deployment.base_url}{gallery_path(run_id, 'image')}?uri={quote(f'file://{svg}', safe='')}"
        )
        assert answer.status == 404
        shot(session, screenshots, "gallery-forged-xcom")
        session.context.close()
    finally:
        author.patch(f"{base}/enhance_best/xcomEntries/return_value", json={"value": original}, timeout=10)
        author.delete(f"{base}/pick_best/xcomEntries/return_value", timeout=10)


def test_planted_thumbnail_cache_symlinks_are_not_followed(
    admin: Session, deployment: AirflowDeployment, human_pick: dict[str, Any], workdir: Path
) -> None:
    """Whoever could write the cache folder plants symlinks to airflow.cfg over its entries: thumbnails are made
    again, never the link's target served; the folder is private to the API server's user."""
    cache = workdir / "airflow-home" / "gallery-cache"
    config = workdir / "airflow-home" / "airflow.cfg"
    run_id, request = human_pick["run_id"], admin.context.request
    uris = [*human_pick["uris"], *xcom(deployment, run_id, "enhance_best")["output_uris"]]
    for uri in uris:  # every output's entry exists
        assert request.get(f"{deployment.base_url}{gallery_path(run_id, 'thumbnail')}?uri={quote(uri, safe='')}").ok
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    entries = [entry for entry in cache.iterdir() if entry.suffix in (".jpg", ".json")]
    assert entries
    for entry in entries:
        entry.unlink()
        entry.symlink_to(config)
    for uri in uris:
        answer = request.get(f"{deployment.base_url}{gallery_path(run_id, 'thumbnail')}?uri={quote(uri, safe='')}")
        assert answer.status == 200
        body = answer.body()
        assert body[:3] == b"\xff\xd8\xff"
        assert b"fernet_key" not in body
        assert b"jwt_secret" not in body
    assert not [entry for entry in cache.iterdir() if entry.is_symlink() and entry.suffix == ".jpg"]


def test_gallery_page_has_no_key_and_no_signed_url(
    admin: Session,
    deployment: AirflowDeployment,
    human_pick: dict[str, Any],
    emulator: PhotaEmulator,
    screenshots: Path,
) -> None:
    response = admin.page.goto(deployment.base_url + gallery_path(human_pick["run_id"]))
    assert response is not None
    assert response.status == 200
    page = admin.page.content()
    assert emulator.api_key not in page
    for marker in ("signature", "Signature", "X-Amz", "token=", "expires=", emulator.base_url):
        assert marker not in page, marker
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
    shot(admin, screenshots, "gallery-standalone-page")


def test_connection_form_shows_the_fields_passes_test_and_never_shows_the_key(
    admin: Session, deployment: AirflowDeployment, emulator: PhotaEmulator, screenshots: Path
) -> None:
    page = admin.page
    seen: list[str] = []
    page.on(
        "response",
        lambda response: seen.append(response.text()) if "/api/v2/connections" in response.url else None,
    )
    behaviour = connection_type_info()["ui-field-behaviour"]
    extras = [field["label"] for field in connection_type_info()["conn-fields"].values()]
    emulator_port = emulator.base_url.rsplit(":", 1)[1]
    wrong_key = "wrong-key-" + "x" * 12

    def add(conn_id: str, key: str, name: str) -> None:
        page.goto(deployment.base_url + "/connections")
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Connection ID").fill(conn_id)
        dialog.get_by_role("combobox").click(force=True)  # an overlay div takes plain clicks
        page.keyboard.type("Phota")
        page.keyboard.press("Enter")
        dialog.get_by_label(behaviour["relabeling"]["host"]).wait_for()
        # Lower-cased: Airflow 3.1's form shows an unrelabeled standard field as "port", 3.3's as "Port".
        labels = [label.strip(" *\n").lower() for label in dialog.locator("label").all_inner_texts()]
        for label in ["Base URL", "API Key", "Port", *extras]:
            assert label.lower() in labels, (label, labels)
        for hidden in ("login", "schema"):
            assert hidden not in labels, labels
        assert dialog.get_by_label("API Key").get_attribute("type") == "password"
        placeholder = dialog.get_by_label("Base URL").get_attribute("placeholder")
        assert placeholder == behaviour["placeholders"]["host"]
        # The emulator's port in the Port field: Airflow 3.3.2's Test button sends port 0 for an empty one and
        # then refuses the test as "differs from the stored connection" for every connection type.
        dialog.get_by_label("Base URL").fill("http://127.0.0.1")
        dialog.get_by_label("API Key").fill(key)
        dialog.get_by_label("Port").fill(emulator_port)
        page.get_by_text("Extra Fields", exact=True).click()
        shot(admin, screenshots, name)
        dialog.get_by_role("button", name="Save").click()
        page.get_by_role("row").filter(has_text=conn_id).wait_for()

    def test_button(conn_id: str) -> dict[str, Any]:
        page.goto(deployment.base_url + "/connections")
        row = page.get_by_role("row").filter(has_text=conn_id)
        with page.expect_response(lambda response: response.url.endswith("/connections/test")) as answer:
            row.get_by_role("button", name="Test Connection").click()
        return dict(answer.value.json())

    add("phota_from_form", emulator.api_key, "connection-form-phota")
    result = test_button("phota_from_form")
    assert result["status"] is True, result
    page.get_by_text("Test Connection Successful").wait_for()
    page.get_by_text(result["message"]).wait_for()
    assert result["message"].startswith(f"Connected to http://127.0.0.1:{emulator_port}")
    shot(admin, screenshots, "connection-test-passed")

    add("phota_wrong_key", wrong_key, "connection-form-wrong-key")
    result = test_button("phota_wrong_key")
    assert result["status"] is False, result
    assert result["message"].startswith("Phota connection failed:"), result
    assert "401" in result["message"] or "key" in result["message"].lower(), result
    page.get_by_text(result["message"][:60]).wait_for()
    shot(admin, screenshots, "connection-test-failed")

    # The key is never shown back: not in the list, not in the edit form, not in any answer of the API.
    page.goto(deployment.base_url + "/connections")
    page.get_by_role("row").filter(has_text="phota_from_form").get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("API Key").wait_for()
    assert dialog.get_by_label("API Key").input_value() != emulator.api_key
    shot(admin, screenshots, "connection-edit-form")
    for secret in (emulator.api_key, wrong_key):
        assert secret not in page.content()
        assert not [text for text in seen if secret in text]
    assert USERS["admin"][1] not in page.content()
