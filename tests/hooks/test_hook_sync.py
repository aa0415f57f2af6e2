"""Every synchronous PhotaHook method, over real HTTP against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hook_helpers import API, FAST_URLS, STANDARD_URLS, ready_profile

from airflow_provider_phota import contract
from airflow_provider_phota.contract import Endpoint, JobStatus, ProfileStatus
from airflow_provider_phota.exceptions import PhotaNotFoundError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import image_base64, open_image

# --- profiles -----------------------------------------------------------------------------------------------------


def test_list_profile_ids_with_and_without_tag(hook: PhotaHook, emu: PhotaEmulator) -> None:
    assert hook.list_profile_ids() == []
    red = hook.create_profile(STANDARD_URLS, tag="red")
    blue = hook.create_profile(FAST_URLS, tag="blue", training_tier="fast")
    untagged = hook.create_profile(STANDARD_URLS)

    assert sorted(hook.list_profile_ids()) == sorted([red, blue, untagged])
    assert hook.list_profile_ids("red") == [red]
    assert hook.list_profile_ids(tag="blue") == [blue]
    assert hook.list_profile_ids("nobody") == []

    listed = emu.requests_to(f"{API}/profiles/ids", "GET")
    # A tagged create looks at the tag's profiles first (to recognise its own profile after a failed attempt).
    assert [entry.query for entry in listed] == [
        {},
        {"tag": "red"},
        {"tag": "blue"},
        {},
        {"tag": "red"},
        {"tag": "blue"},
        {"tag": "nobody"},
    ]


@pytest.mark.parametrize(
    ("urls", "tier", "expected_tier", "price"),
    [
        (STANDARD_URLS, "standard", "standard", 2.90),
        (STANDARD_URLS[:5], "fast", "fast", 1.49),
        (STANDARD_URLS * 5, "standard", "standard", 2.90),  # 50, the top of the standard range
    ],
)
def test_create_profile_tiers(
    hook: PhotaHook, emu: PhotaEmulator, urls: list[str], tier: str, expected_tier: str, price: float
) -> None:
    profile_id = hook.create_profile(urls, tag="tiers", training_tier=tier)

    view = emu.profiles[profile_id]
    assert (view.tag, view.tier) == ("tiers", expected_tier)
    assert [c.amount_usd for c in emu.charges("profile")] == [price]
    (post,) = emu.requests_to(f"{API}/profiles/add", "POST")
    assert post.json == {"image_urls": urls, "tag": "tiers", "training_tier": tier}


def test_create_profile_without_tag_sends_no_tag_field(hook: PhotaHook, emu: PhotaEmulator) -> None:
    profile_id = hook.create_profile(STANDARD_URLS)

    assert emu.profiles[profile_id].tag is None
    (post,) = emu.requests_to(f"{API}/profiles/add", "POST")
    assert post.json == {"image_urls": STANDARD_URLS, "training_tier": "standard"}
    # Without a tag there is nothing to look up first: the create is the only request.
    assert len(emu.requests) == 1


def test_get_profile_status_follows_the_training_state_machine(slow_hook: PhotaHook, slow_emu: PhotaEmulator) -> None:
    hook, emu = slow_hook, slow_emu  # 100 s of training on the emulator's clock
    profile_id = hook.create_profile(STANDARD_URLS)
    seen = [hook.get_profile_status(profile_id)]
    for seconds in (15, 30, 60):  # to 15 %, 45 %, 105 % of the training
        emu.advance(seconds)
        seen.append(hook.get_profile_status(profile_id))

    assert [state.status for state in seen] == [
        ProfileStatus.VALIDATING,
        ProfileStatus.QUEUING,
        ProfileStatus.IN_PROGRESS,
        ProfileStatus.READY,
    ]
    assert all(state.profile_id == profile_id for state in seen)
    assert [state.is_training for state in seen] == [True, True, True, False]
    assert seen[-1].is_ready
    assert seen[0].message  # the training phases carry a message


def test_get_profile_status_error_outcome(hook: PhotaHook, emu: PhotaEmulator) -> None:
    profile_id = hook.create_profile(STANDARD_URLS)
    emu.set_profile_outcome(profile_id, "ERROR", "no face found")

    state = hook.get_profile_status(profile_id)

    assert (state.status, state.message, state.is_failed) == ("ERROR", "no face found", True)


def test_get_profile_picture_is_a_jpeg_once_ready_and_404_before(hook: PhotaHook, emu: PhotaEmulator) -> None:
    profile_id = hook.create_profile(STANDARD_URLS)

    with pytest.raises(PhotaNotFoundError) as raised:
        hook.get_profile_picture(profile_id)
    assert raised.value.status == 404
    assert len(emu.requests_to(f"{API}/profiles/*/profile_picture")) == 1  # a 404 is not retried

    emu.advance(emu.training_seconds)
    picture = hook.get_profile_picture(profile_id)

    assert picture[:3] == b"\xff\xd8\xff"
    assert open_image(picture).format == "JPEG"


def test_delete_profile(hook: PhotaHook, emu: PhotaEmulator) -> None:
    keep = hook.create_profile(STANDARD_URLS, tag="t")
    gone = hook.create_profile(STANDARD_URLS, tag="t")

    hook.delete_profile(gone)

    assert set(emu.profiles) == {keep}
    assert hook.list_profile_ids("t") == [keep]
    (delete,) = emu.requests_to(f"{API}/profiles/*", "DELETE")
    assert delete.path == f"{API}/profiles/{gone}"
    with pytest.raises(PhotaNotFoundError):
        hook.delete_profile(gone)


# --- image endpoints ------------------------------------------------------------------------------------------


def test_edit_bytes_mode(hook: PhotaHook, emu: PhotaEmulator) -> None:
    profile_id = ready_profile(hook, emu)
    first = image_base64(300, 200)

    options = {"profile_ids": [profile_id], "num_output_images": 2, "resolution": "1K"}

    result = hook.edit("make it brighter", [first, image_base64(50, 50)], **options)

    expected = contract.output_size(Endpoint.EDIT, resolution="1K", input_size=(300, 200))
    assert expected == (1024, 683)
    assert len(result.images) == 2
    assert result.download_urls == []
    assert len(set(result.images)) == 2  # two different outputs
    for data in result.images:
        image = open_image(data)
        assert (image.format, image.size) == ("PNG", expected)
    assert result.known_subjects == {profile_id: 2}
    (post,) = emu.requests_to(f"{API}/edit", "POST")
    assert result.request_id == post.request_id
    assert post.json == {"prompt": "make it brighter", "images": [first, image_base64(50, 50)], **options}


def test_generate_bytes_mode_with_profile_token_and_jpg(hook: PhotaHook, emu: PhotaEmulator) -> None:
    profile_id = ready_profile(hook, emu)

    result = hook.generate(f"a portrait of [[{profile_id}]]", aspect_ratio="16:9", resolution="2K", output_format="jpg")

    assert len(result.images) == 1
    image = open_image(result.images[0])
    assert image.format == "JPEG"
    assert image.size == contract.output_size(Endpoint.GENERATE, resolution="2K", aspect_ratio="16:9") == (2048, 1152)
    assert result.known_subjects == {profile_id: 1}
    assert result.request_id == emu.requests_to(f"{API}/generate")[0].request_id
    (charge,) = emu.charges("images")
    assert charge.with_identity == 1


def test_generate_without_profiles_has_no_known_subjects(hook: PhotaHook, emu: PhotaEmulator) -> None:
    result = hook.generate("a lighthouse")

    assert open_image(result.images[0]).size == contract.output_size(Endpoint.GENERATE) == (1024, 1024)
    assert result.known_subjects == {}
    assert emu.requests_to(f"{API}/generate")[0].json == {"prompt": "a lighthouse"}


def test_enhance_and_remix_bytes_mode(hook: PhotaHook, emu: PhotaEmulator) -> None:
    profile_id = ready_profile(hook, emu)

    enhanced = hook.enhance(image_base64(400, 300), profile_ids=[profile_id])
    remixed = hook.remix(image_base64(300, 400), image_base64(64, 64), prompt="in the style of the reference")

    assert open_image(enhanced.images[0]).size == contract.output_size(Endpoint.ENHANCE, input_size=(400, 300))
    assert open_image(enhanced.images[0]).size == (2048, 1536)
    assert open_image(remixed.images[0]).size == contract.output_size(Endpoint.REMIX, input_size=(300, 400))
    assert open_image(remixed.images[0]).size == (1536, 2048)
    assert enhanced.known_subjects == {profile_id: 1}
    assert remixed.known_subjects == {}
    assert enhanced.request_id
    assert remixed.request_id
    assert enhanced.request_id != remixed.request_id
    assert set(emu.requests_to(f"{API}/remix")[0].json) == {"input_image", "reference_image", "prompt"}


@pytest.mark.parametrize(
    ("method", "args", "endpoint", "size"),
    [
        ("edit", ("recolour", [image_base64(200, 100)]), Endpoint.EDIT, (1024, 512)),
        ("generate", ("a cat",), Endpoint.GENERATE, (1024, 1024)),
        ("enhance", (image_base64(100, 200),), Endpoint.ENHANCE, (1024, 2048)),
        ("remix", (image_base64(100, 100), image_base64(10, 10)), Endpoint.REMIX, (2048, 2048)),
    ],
)
def test_urls_mode_then_download(
    hook: PhotaHook,
    emu: PhotaEmulator,
    tmp_path: Path,
    method: str,
    args: tuple[Any, ...],
    endpoint: Endpoint,
    size: tuple[int, int],
) -> None:
    result = getattr(hook, method)(*args, response_mode="urls")

    assert result.images == []
    (url,) = result.download_urls
    assert url.startswith(emu.base_url + "/cdn/")
    assert result.request_id == emu.requests_to(f"{API}/{endpoint.value}")[0].request_id

    written = hook.download(url, tmp_path / "out" / "image.png")

    target = tmp_path / "out" / "image.png"
    assert written == target.stat().st_size > 0
    assert open_image(target.read_bytes()).size == size
    assert [d.status for d in emu.downloads] == [200]
    assert list((tmp_path / "out").iterdir()) == [target]  # no partial file left behind


def test_download_to_object_storage_path(hook: PhotaHook, emu: PhotaEmulator, tmp_path: Path) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    (url,) = hook.generate("a boat", response_mode="urls", output_format="jpg").download_urls
    destination = ObjectStoragePath(f"file://{tmp_path}/nested/dir/boat.jpg")

    written = hook.download(url, destination)

    data = (tmp_path / "nested" / "dir" / "boat.jpg").read_bytes()
    assert written == len(data)
    assert open_image(data).format == "JPEG"
    assert emu.downloads[-1].size == len(data)


def test_download_of_a_tampered_url_fails_without_a_file(hook: PhotaHook, emu: PhotaEmulator, tmp_path: Path) -> None:
    from airflow_provider_phota.exceptions import PhotaAuthenticationError

    (url,) = hook.generate("a boat", response_mode="urls").download_urls
    tampered = url.replace("token=", "token=0")

    with pytest.raises(PhotaAuthenticationError) as raised:
        hook.download(tampered, tmp_path / "x.png")

    assert raised.value.status == 403
    assert list(tmp_path.iterdir()) == []
    assert [d.status for d in emu.downloads] == [403]  # not retried


def test_download_of_an_expired_url_is_refused_once(hook: PhotaHook, emu: PhotaEmulator, tmp_path: Path) -> None:
    from airflow_provider_phota.exceptions import PhotaAPIError

    (url,) = hook.generate("old news", response_mode="urls").download_urls
    emu.advance(contract.SIGNED_URL_LIFETIME_SECONDS + 60)

    with pytest.raises(PhotaAPIError) as raised:
        hook.download(url, tmp_path / "late.png")

    assert raised.value.status == 403
    assert "expired" in raised.value.detail
    assert [d.status for d in emu.downloads] == [403]
    assert list(tmp_path.iterdir()) == []


# --- async jobs -------------------------------------------------------------------------------------------------


def test_submit_job_is_idempotent_per_client_request_id(
    slow_hook: PhotaHook, slow_emu: PhotaEmulator, tmp_path: Path
) -> None:
    hook, emu = slow_hook, slow_emu  # jobs take 100 s on the emulator's clock
    first = hook.submit_job(Endpoint.GENERATE, {"prompt": "a tree"}, client_request_id="run-1:task.a_b")
    again = hook.submit_job(Endpoint.GENERATE, {"prompt": "a tree"}, client_request_id="run-1:task.a_b")

    assert first.job_id == again.job_id
    assert first.status == "QUEUED"
    assert first.poll_url == f"{API}/jobs/{first.job_id}"
    assert len(emu.charges("images")) == 1
    assert list(emu.jobs) == [first.job_id]
    posts = emu.requests_to(f"{API}/generate", "POST")
    assert len(posts) == 2
    async_fields = {"async": True, "response_mode": "urls", "client_request_id": "run-1:task.a_b"}
    assert posts[0].json == {"prompt": "a tree", **async_fields}

    assert hook.get_job(first.job_id).status == JobStatus.QUEUED
    emu.advance(50)
    assert hook.get_job(first.job_id).status == JobStatus.RUNNING
    emu.advance(50)
    state = hook.wait_for_job(first.job_id, poll_interval=0.05, timeout=10)

    assert state.succeeded
    assert state.is_terminal
    assert state.job_id == first.job_id
    assert state.endpoint == "generate"
    assert state.result is not None
    assert len(state.result.download_urls) == 1
    assert state.result.request_id == emu.requests_to(f"{API}/jobs/*")[-1].request_id
    written = hook.download(state.result.download_urls[0], tmp_path / "tree.png")
    assert open_image((tmp_path / "tree.png").read_bytes()).size == (1024, 1024)
    assert written > 0
    # A third submit after the job finished still returns the same job, still without a charge.
    assert hook.submit_job("generate", {"prompt": "a tree"}, client_request_id="run-1:task.a_b").job_id == first.job_id
    assert len(emu.charges("images")) == 1


def test_submit_job_with_callback_url_and_options(hook: PhotaHook, emu: PhotaEmulator) -> None:
    handle = hook.submit_job(
        "edit",
        {"prompt": "p", "images": [image_base64(20, 20)], "num_output_images": 2},
        client_request_id="cb-1",
        callback_url="https://127.0.0.1:1/hook",
    )

    (post,) = emu.requests_to(f"{API}/edit", "POST")
    assert post.json["callback_url"] == "https://127.0.0.1:1/hook"
    assert post.json["num_output_images"] == 2
    assert emu.jobs[handle.job_id].client_request_id == "cb-1"


def test_wait_for_job_polls_until_terminal(slow_hook: PhotaHook, slow_emu: PhotaEmulator) -> None:
    import threading

    handle = slow_hook.submit_job(Endpoint.GENERATE, {"prompt": "slow"}, client_request_id="poll-1")
    finish = threading.Timer(0.3, slow_emu.advance, [slow_emu.job_seconds])
    finish.start()
    try:
        state = slow_hook.wait_for_job(handle.job_id, poll_interval=0.05, timeout=20)
    finally:
        finish.join()

    assert state.status == JobStatus.SUCCEEDED
    polls = slow_emu.requests_to(f"{API}/jobs/*")
    assert len(polls) >= 2  # polled while the job ran, then once more when it had finished
    assert polls[-1].time - polls[0].time >= 0.25


def test_wait_for_job_returns_a_failed_job(hook: PhotaHook, emu: PhotaEmulator) -> None:
    handle = hook.submit_job(Endpoint.GENERATE, {"prompt": "phota-fail-job"}, client_request_id="fail-1")
    emu.advance(emu.job_seconds)

    state = hook.wait_for_job(handle.job_id, poll_interval=0.05, timeout=10)

    assert state.status == JobStatus.FAILED
    assert state.error_type == "JOB_FAILED"
    assert state.error_message
    assert state.result is None


def test_wait_for_job_times_out(slow_hook: PhotaHook, slow_emu: PhotaEmulator) -> None:
    handle = slow_hook.submit_job(Endpoint.GENERATE, {"prompt": "slow"}, client_request_id="slow-1")

    with pytest.raises(TimeoutError, match=handle.job_id):
        slow_hook.wait_for_job(handle.job_id, poll_interval=0.05, timeout=0.2)

    assert 2 <= len(slow_emu.requests_to(f"{API}/jobs/*")) <= 5


def test_get_job_unknown_is_not_found(hook: PhotaHook, emu: PhotaEmulator) -> None:
    with pytest.raises(PhotaNotFoundError) as raised:
        hook.get_job("job_missing")
    assert raised.value.status == 404
    assert len(emu.requests_to(f"{API}/jobs/job_missing")) == 1


# --- callbacks ----------------------------------------------------------------------------------------------------


def test_get_webhook_secret(hook: PhotaHook, emu: PhotaEmulator) -> None:
    assert hook.get_webhook_secret() == emu.webhook_secret
    assert len(emu.requests_to(f"{API}/webhook-secret", "GET")) == 1


def test_verify_callback(hook: PhotaHook, emu: PhotaEmulator) -> None:
    body = b'{"job_id": "job_1", "status": "SUCCEEDED"}'
    signature = contract.sign_callback(emu.webhook_secret, body)

    assert hook.verify_callback(body, signature) is True
    assert hook.verify_callback(body + b" ", signature) is False
    assert hook.verify_callback(body, signature[:-1] + ("0" if signature[-1] != "0" else "1")) is False
    assert hook.verify_callback(body, None) is False
    assert hook.verify_callback(body, contract.sign_callback("another-secret", body)) is False
    assert hook.verify_callback(body, "sha256=caf\u00e9") is False  # non-ASCII: wrong, not a TypeError
    # The secret was fetched from the API for each check (no secret given).
    assert len(emu.requests_to(f"{API}/webhook-secret")) == 6


def test_verify_callback_with_a_given_secret_makes_no_request(hook: PhotaHook, emu: PhotaEmulator) -> None:
    body = b"{}"
    assert hook.verify_callback(body, contract.sign_callback("s3cr3t", body), secret="s3cr3t") is True
    assert emu.requests == []


# --- the documented fields only --------------------------------------------------------------------------------


def test_unset_options_are_absent_not_null(hook: PhotaHook, emu: PhotaEmulator) -> None:
    hook.generate("x", aspect_ratio=None, resolution=None, output_format="png", base_model=None, quality=None)
    hook.edit("y", [image_base64(8, 8)], profile_ids=None, num_output_images=None)
    hook.enhance(image_base64(8, 8), prompt=None)
    hook.submit_job(Endpoint.GENERATE, {"prompt": "z", "resolution": None}, client_request_id="k1", callback_url=None)

    bodies = [entry.json for entry in emu.requests]
    assert bodies[0] == {"prompt": "x", "output_format": "png"}
    assert bodies[1] == {"prompt": "y", "images": [image_base64(8, 8)]}
    assert bodies[2] == {"image": image_base64(8, 8)}
    assert bodies[3] == {"prompt": "z", "async": True, "response_mode": "urls", "client_request_id": "k1"}
    for body in bodies:
        assert None not in body.values()


def test_images_are_sent_as_given_base64_or_url(hook: PhotaHook, emu: PhotaEmulator) -> None:
    (url,) = hook.generate("source", response_mode="urls").download_urls

    result = hook.edit("reuse", [url])  # one of the emulator's own signed URLs

    assert emu.requests_to(f"{API}/edit")[0].json["images"] == [url]
    assert open_image(result.images[0]).size == (1024, 1024)
