"""Bad input fails before any request: the request log stays empty, the task fails without retries
(``AirflowFailException``) and the message names the field and what is allowed."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability_support import PNG_1X1, STANDARD_URLS, task_context

from airflow_provider_phota._compat import AirflowFailException
from airflow_provider_phota.exceptions import PhotaValidationError
from airflow_provider_phota.operators.images import (
    PhotaEditOperator,
    PhotaEnhanceOperator,
    PhotaGenerateOperator,
    PhotaRemixOperator,
)
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator, PhotaDeleteProfileOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor
from airflow_provider_phota.testing import PhotaEmulator

Factory = Callable[[Path], Any]
MISSING_FILE = "/nonexistent/phota-reliability/missing.png"


def generate(**kwargs: Any) -> Factory:
    return lambda tmp: PhotaGenerateOperator(task_id="t", prompt=kwargs.pop("prompt", "a fox"), **kwargs)


def edit(**kwargs: Any) -> Factory:
    images = kwargs.pop("images", [PNG_1X1])
    prompt = kwargs.pop("prompt", "make it blue")
    return lambda tmp: PhotaEditOperator(task_id="t", prompt=prompt, images=images, **kwargs)


def enhance(**kwargs: Any) -> Factory:
    image = kwargs.pop("image", PNG_1X1)
    return lambda tmp: PhotaEnhanceOperator(task_id="t", image=image, **kwargs)


def remix(**kwargs: Any) -> Factory:
    images = {"input_image": PNG_1X1, "reference_image": PNG_1X1}
    return lambda tmp: PhotaRemixOperator(task_id="t", **{**images, **kwargs})


def create(**kwargs: Any) -> Factory:
    urls = kwargs.pop("image_urls", STANDARD_URLS)
    return lambda tmp: PhotaCreateProfileOperator(task_id="t", image_urls=urls, **kwargs)


def delete(profile_id: Any) -> Factory:
    return lambda tmp: PhotaDeleteProfileOperator(task_id="t", profile_id=profile_id)


def sensor(profile_id: Any) -> Factory:
    return lambda tmp: ProfileReadySensor(task_id="t", profile_id=profile_id, deferrable=True)


def in_tmp(make: Callable[..., Factory], **paths: Callable[[Path], str]) -> Factory:
    """A factory whose arguments are paths made in the test's temporary folder."""
    return lambda tmp: make(**{name: path(tmp) for name, path in paths.items()})(tmp)


def regular_file(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("a regular file, not a folder")
    return path


def text_file(tmp: Path) -> Path:
    path = tmp / "photo.png"  # named like an image, but it is text
    path.write_text("this is not an image, whatever its name says")
    return path


NOT_AN_IMAGE_BASE64 = base64.b64encode(b"plain text posing as an image, long enough to look like base64").decode()


# (id, operator factory, the field the message must name, what it must say is allowed)
CASES: list[tuple[str, Factory, str, str]] = [
    # counts
    ("generate-num_output_images-0", generate(num_output_images=0), "num_output_images", "an integer from 1 to 4"),
    ("generate-num_output_images-5", generate(num_output_images=5), "num_output_images", "an integer from 1 to 4"),
    ("generate-num_output_images-str", generate(num_output_images="two"), "num_output_images", "an integer from 1"),
    ("generate-num_output_images-rendered-9", generate(num_output_images="9"), "num_output_images", "1 to 4"),
    ("enhance-num_output_images-7", enhance(num_output_images=7), "num_output_images", "an integer from 1 to 4"),
    ("remix-num_output_images--1", remix(num_output_images=-1), "num_output_images", "an integer from 1 to 4"),
    ("edit-11-images", edit(images=[PNG_1X1] * 11), "images", "1 to 10 images"),
    ("edit-no-images", edit(images=[]), "images", "a base64 image or an http(s) URL"),
    ("create-4-urls", create(image_urls=STANDARD_URLS[:4]), "image_urls", "5 to 50 image URLs"),
    ("create-51-urls", create(image_urls=STANDARD_URLS * 5 + STANDARD_URLS[:1]), "image_urls", "5 to 50"),
    ("create-standard-5-urls", create(image_urls=STANDARD_URLS[:5]), "image_urls", "10 to 50 image URLs"),
    (
        "create-fast-11-urls",
        create(image_urls=[*STANDARD_URLS, "https://e.com/x.jpg"], training_tier="fast"),
        "image_urls",
        "5 to 10 image URLs",
    ),
    # enums
    ("generate-aspect_ratio-2:1", generate(aspect_ratio="2:1"), "aspect_ratio", "'16:9'"),
    ("edit-aspect_ratio-square", edit(aspect_ratio="square"), "aspect_ratio", "'1:1'"),
    ("generate-resolution-8K", generate(resolution="8K"), "resolution", "'1K', '2K', '4K'"),
    ("generate-output_format-gif", generate(output_format="gif"), "output_format", "'png', 'jpg'"),
    ("enhance-output_format-webp", enhance(output_format="webp"), "output_format", "'png', 'jpg'"),
    ("generate-base_model-unknown", generate(base_model="dall-e"), "base_model", "'nb2'"),
    ("create-training_tier-premium", create(training_tier="premium"), "training_tier", "'standard', 'fast'"),
    # model / resolution and quality combinations
    ("generate-quality-with-nb2", generate(quality="high"), "quality", "gpt-image-2"),
    ("edit-quality-with-flux-2", edit(base_model="flux-2", quality="low"), "quality", "gpt-image-2"),
    ("generate-quality-ultra", generate(base_model="gpt-image-2", quality="ultra"), "quality", "'high'"),
    ("generate-reve-2K", generate(base_model="reve", resolution="2K"), "resolution", "'1K'"),
    ("generate-reve-4K", generate(base_model="reve", resolution="4K"), "resolution", "'1K'"),
    ("generate-flux-2-4K", generate(base_model="flux-2", resolution="4K"), "resolution", "'1K', '2K'"),
    ("edit-qwen-image-2-4K", edit(base_model="qwen-image-2", resolution="4K"), "resolution", "'1K', '2K'"),
    # empty or malformed URLs and image references
    ("edit-url-no-host", edit(images=["http://"]), "images[0]", "an http(s) URL"),
    ("edit-url-https-no-host", edit(images=[PNG_1X1, "https://"]), "images[1]", "an http(s) URL"),
    ("edit-url-unknown-scheme", edit(images=["gopher://example.com/a.png"]), "images[0]", "filesystem is installed"),
    ("edit-not-an-image", edit(images=["not an image"]), "images[0]", "a base64 image"),
    ("edit-missing-file", edit(images=[MISSING_FILE]), "images[0]", "an existing file"),
    ("enhance-empty-image", enhance(image=""), "image", "an http(s) URL, a base64 image"),
    ("enhance-missing-file", enhance(image=MISSING_FILE), "image", "an existing file"),
    ("remix-reference-empty", remix(reference_image=""), "reference_image", "an http(s) URL"),
    ("remix-input-bad-scheme", remix(input_image="nope://bucket/a.png"), "input_image", "filesystem is installed"),
    ("edit-profile_ids-empty", edit(profile_ids=[""]), "profile_ids[0]", "a non-empty string"),
    (
        "create-url-not-a-url",
        create(image_urls=[*STANDARD_URLS[:9], "photo.jpg"]),
        "image_urls[9]",
        "a public http(s) image URL",
    ),
    ("create-url-ftp", create(image_urls=["ftp://e.com/a.jpg"] * 10), "image_urls[0]", "a public http(s)"),
    (
        "create-url-with-space",
        create(image_urls=[*STANDARD_URLS[:9], "https://e.com/a b.jpg"]),
        "image_urls[9]",
        "a public http(s) image URL",
    ),
    # bad storage paths
    ("generate-output_path-unknown-scheme", generate(output_path="nope://bucket/x"), "output_path", "s3:// needs"),
    ("generate-output_path-empty", generate(output_path=""), "output_path", "a local path or a URI"),
    ("generate-output_path-no-bucket", generate(output_path="s3://"), "output_path", "scheme://[conn_id@]bucket"),
    ("remix-output_path-blank", remix(output_path="   "), "output_path", "a local path or a URI"),
    # outputs that could not be kept after paying for them
    (
        "generate-output_path-under-a-file",
        in_tmp(generate, output_path=lambda tmp: str(regular_file(tmp) / "out")),
        "output_path",
        "a folder",
    ),
    (
        "remix-output_path-is-a-file",
        in_tmp(remix, output_path=lambda tmp: f"file://{regular_file(tmp)}"),
        "output_path",
        "a folder",
    ),
    # prompts the endpoint needs
    ("generate-prompt-empty", generate(prompt=""), "prompt", "a non-empty prompt"),
    ("generate-prompt-whitespace", generate(prompt=" \n\t "), "prompt", "a non-empty prompt"),
    ("edit-prompt-empty", edit(prompt="   "), "prompt", "a non-empty prompt"),
    # input files and base64 that are not images
    (
        "edit-local-file-not-an-image",
        in_tmp(edit, images=lambda tmp: [str(text_file(tmp))]),
        "images[0]",
        "a JPEG, PNG, WebP or HEIC image",
    ),
    (
        "enhance-storage-file-not-an-image",
        in_tmp(enhance, image=lambda tmp: f"file://{text_file(tmp)}"),
        "image",
        "a JPEG, PNG, WebP or HEIC image",
    ),
    (
        "remix-base64-not-an-image",
        remix(reference_image=NOT_AN_IMAGE_BASE64),
        "reference_image",
        "a JPEG, PNG, WebP or HEIC image",
    ),
    ("edit-base64-not-an-image", edit(images=[PNG_1X1, NOT_AN_IMAGE_BASE64]), "images[1]", "a JPEG, PNG"),
    # profile ids the service can not have
    ("edit-profile_ids-slash", edit(profile_ids=["a/b"]), "profile_ids[0]", "a non-empty string without '/'"),
    ("enhance-profile_ids-dotdot", enhance(profile_ids=["prof_1", ".."]), "profile_ids[1]", "not '.' or '..'"),
    ("remix-profile_ids-dot", remix(profile_ids=["."]), "profile_ids[0]", "not '.' or '..'"),
    # other fields
    ("generate-client_request_id-spaces", generate(client_request_id="my key"), "client_request_id", "1 to 128"),
    ("generate-client_request_id-129", generate(client_request_id="k" * 129), "client_request_id", "1 to 128"),
    ("generate-poll_interval-0", generate(poll_interval=0), "poll_interval", "a number > 0"),
    ("enhance-timeout-negative", enhance(timeout=-1), "timeout", "a number > 0"),
    ("generate-prompt-not-text", generate(prompt=42), "prompt", "a string"),
    ("create-tag-129", create(tag="t" * 129), "tag", "1 to 128 characters"),
    ("create-tag-empty", create(tag=""), "tag", "1 to 128 characters"),
    ("delete-profile_id-empty", delete(""), "profile_id", "a non-empty string without '/'"),
    ("delete-profile_id-slash", delete("a/b"), "profile_id", "a non-empty string without '/'"),
    ("delete-profile_id-dotdot", delete(".."), "profile_id", "not '.' or '..'"),
    ("sensor-profile_id-empty", sensor(""), "profile_id", "a non-empty string without '/'"),
    ("sensor-profile_id-slash", sensor("a/b"), "profile_id", "a non-empty string without '/'"),
    ("sensor-profile_id-dot", sensor("."), "profile_id", "not '.' or '..'"),
]


@pytest.mark.parametrize(("factory", "field", "allowed"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_invalid_arguments_fail_before_any_request(
    factory: Factory, field: str, allowed: str, emu: PhotaEmulator, conn_id: str, tmp_path: Path
) -> None:
    operator = factory(tmp_path)

    with pytest.raises(AirflowFailException) as raised:  # fails the task without using its retries
        operator.execute(task_context())

    message = str(raised.value)
    assert isinstance(raised.value.__cause__, PhotaValidationError)
    assert f"{field}:" in message
    assert allowed in message
    assert emu.requests == []
    assert emu.downloads == []


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write to: no write permission, and immutable where the tests run as root
    (root ignores permission bits, not the immutable attribute)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    immutable = False
    if os.access(folder, os.W_OK) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode == 0
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("no way to make a folder unwritable for this user here")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o700)


@pytest.mark.parametrize("below", ["", "renders/today"])
def test_unwritable_output_folder_fails_before_any_request(
    unwritable_folder: Path, below: str, emu: PhotaEmulator, conn_id: str
) -> None:
    target = unwritable_folder / below if below else unwritable_folder
    operator = PhotaGenerateOperator(task_id="t", prompt="a fox", output_path=str(target))

    with pytest.raises(AirflowFailException) as raised:
        operator.execute(task_context())

    assert isinstance(raised.value.__cause__, PhotaValidationError)
    assert "output_path:" in str(raised.value)
    assert f"{unwritable_folder} is not writable" in str(raised.value)
    assert emu.requests == []


NO_FILESYSTEM: list[tuple[str, Callable[[str], Any], str]] = [
    ("output_path", lambda uri: PhotaGenerateOperator(task_id="t", prompt="a fox", output_path=uri), "s3://bucket/x"),
    (
        "output_path",
        lambda uri: PhotaGenerateOperator(task_id="t", prompt="a fox", output_path=uri),
        "s3://aws_default@bucket/renders",
    ),
    ("output_path", lambda uri: PhotaEnhanceOperator(task_id="t", image=PNG_1X1, output_path=uri), "gs://b/out"),
    ("image", lambda uri: PhotaEnhanceOperator(task_id="t", image=uri), "s3://bucket/photos/a.png"),
]


@pytest.mark.parametrize(("field", "build", "uri"), NO_FILESYSTEM)
def test_storage_scheme_without_its_filesystem_fails_before_any_request(
    field: str, build: Callable[[str], Any], uri: str, emu: PhotaEmulator, conn_id: str
) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    try:
        ObjectStoragePath(uri).fs  # noqa: B018 - resolving the filesystem is the check
    except (ImportError, ValueError):
        pass
    else:
        pytest.skip(f"a filesystem for {uri.partition(':')[0]}:// is installed here")

    with pytest.raises(AirflowFailException) as raised:
        build(uri).execute(task_context())

    assert isinstance(raised.value.__cause__, PhotaValidationError)
    assert f"{field}:" in str(raised.value)
    assert "no filesystem" in str(raised.value)
    assert emu.requests == []


# Fields an endpoint does not accept, and sensor settings, are refused when the task is built: before any request.
CONSTRUCTION: list[tuple[str, Callable[[], Any], str]] = [
    ("generate-images", lambda: PhotaGenerateOperator(task_id="t", prompt="x", images=[PNG_1X1]), "images"),
    ("generate-profile_ids", lambda: PhotaGenerateOperator(task_id="t", prompt="x", profile_ids=["p"]), "profile_ids"),
    (
        "enhance-aspect_ratio",
        lambda: PhotaEnhanceOperator(task_id="t", image=PNG_1X1, aspect_ratio="1:1"),
        "aspect_ratio",
    ),
    (
        "remix-resolution",
        lambda: PhotaRemixOperator(task_id="t", input_image=PNG_1X1, reference_image=PNG_1X1, resolution="2K"),
        "resolution",
    ),
    ("create-prompt", lambda: PhotaCreateProfileOperator(task_id="t", image_urls=STANDARD_URLS, prompt="x"), "prompt"),
    (
        "sensor-negative-poke_interval",
        lambda: ProfileReadySensor(task_id="t", profile_id="p", poke_interval=-1),
        "poke_interval",
    ),
    ("sensor-negative-timeout", lambda: ProfileReadySensor(task_id="t", profile_id="p", timeout=-5), "timeout"),
]


@pytest.mark.parametrize(("build", "field"), [pytest.param(*c[1:], id=c[0]) for c in CONSTRUCTION])
def test_unaccepted_fields_fail_when_the_task_is_built(
    build: Callable[[], Any], field: str, emu: PhotaEmulator, conn_id: str
) -> None:
    with pytest.raises(Exception) as raised:  # noqa: PT011 - Airflow's own errors (TypeError, AirflowException)
        build()

    assert field in str(raised.value)
    assert emu.requests == []


def test_bad_input_census() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)
    assert (
        len(CASES) + len(CONSTRUCTION) == 75
    )  # 79, less the four cases of the removed use_async_job and response_mode
