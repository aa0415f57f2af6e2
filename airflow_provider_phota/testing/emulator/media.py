"""Images in and out, as the service handles them: inputs fetched (loopback and the emulator's own signed URLs only;
it never calls the internet) and checked, outputs rendered in worker threads and kept behind signed URLs."""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientSession, ClientTimeout

from airflow_provider_phota import contract
from airflow_provider_phota.contract import Endpoint, ErrorType
from airflow_provider_phota.testing import images
from airflow_provider_phota.testing.emulator.state import (
    CDN_PREFIX,
    MARKER_NO_SUBJECT,
    TRAINING_ERROR_MESSAGE,
    ApiError,
    EmulatorState,
)

FETCH_TIMEOUT_SECONDS = 5.0  # loopback image fetches


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Media:
    """The emulator's image work: one HTTP client session for fetches (and callbacks) and a thread pool for Pillow."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.base_url = ""  # set once the socket is bound
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="phota-render")
        self.session: ClientSession | None = None

    async def open(self) -> None:
        self.session = ClientSession(timeout=ClientTimeout(total=FETCH_TIMEOUT_SECONDS))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def check_training_images(self, urls: list[str]) -> None:
        """A training set the service cannot use is a descriptive 400 ([RN-0.1.1]): loopback URLs (and our own
        download URLs) must be reachable JPEG, PNG, WebP or HEIC images ([R-ADD]) that decode completely; a URL with
        the ``phota-no-subject`` marker stands for a set without a detectable subject. Other hosts are not fetched."""
        local = [(index, url) for index, url in enumerate(urls) if self.fetches(url)]
        results = await asyncio.gather(*(self.fetch_image(url) for _, url in local))
        for (index, url), (data, problem) in zip(local, results, strict=True):
            if problem is None and data is not None:
                problem = await self.in_executor(functools.partial(images.input_image_problem, full_decode=True), data)
            if problem is not None:
                raise ApiError(400, f"image_urls[{index}]: {url} {problem}", ErrorType.INVALID_REQUEST)
        if any(MARKER_NO_SUBJECT in url for url in urls):
            raise ApiError(400, f"image_urls: {TRAINING_ERROR_MESSAGE}", ErrorType.INVALID_REQUEST)

    def fetches(self, url: str) -> bool:
        """The emulator fetches loopback URLs and its own download URLs; it never calls the internet."""
        return is_loopback_url(url) or (bool(self.base_url) and url.startswith(self.base_url + CDN_PREFIX + "/"))

    async def fetch_image(self, url: str) -> tuple[bytes | None, str | None]:
        own = self.state.file_by_url(url, self.base_url)
        if own is not None:
            return own
        assert self.session is not None
        try:
            async with self.session.get(url) as response:
                if response.status != 200:
                    return None, f"could not be fetched (HTTP {response.status})"
                return await response.read(), None
        except Exception as error:
            return None, f"could not be fetched ({type(error).__name__}: {error})"

    async def render_outputs(
        self,
        endpoint: Endpoint,
        body: Mapping[str, Any],
        subjects: Mapping[str, int],
        *,
        seed: str,
        input_size: tuple[int, int] | None,
    ) -> dict[str, Any]:
        """The image response ([R-GEN], [R-ENH], [QS]): real images of the api-decisions D14 size, base64 in bytes
        mode or signed URLs in urls mode."""
        width, height = contract.output_size(
            endpoint, resolution=body.get("resolution"), aspect_ratio=body.get("aspect_ratio"), input_size=input_size
        )
        output_format = "jpg" if body.get("output_format") == "jpg" else "png"
        prompt = str(body.get("prompt") or "")
        seed_text = f"{endpoint.value}\x00{prompt}\x00{seed}"
        count = int(body.get("num_output_images") or 1)
        outputs = await asyncio.gather(
            *(
                self.in_executor(
                    _render,
                    width,
                    height,
                    seed_text,
                    f"/{endpoint.value}: {prompt}" if prompt else f"/{endpoint.value}",
                    index,
                    output_format,
                )
                for index in range(count)
            )
        )
        counts = dict(subjects)
        if body.get("response_mode") == "urls":
            urls = [self.state.store_file(self.base_url, data, output_format) for data in outputs]
            return {"images": [], "download_urls": urls, "known_subjects": {"counts": counts}}
        encoded = [base64.b64encode(data).decode("ascii") for data in outputs]
        return {"images": encoded, "download_urls": [], "known_subjects": {"counts": counts}}

    async def check_input_images(self, endpoint: Endpoint, body: Mapping[str, Any]) -> tuple[int, int] | None:
        """Refuse (400 ``INVALID_REQUEST``) input images the service would not take, and return the pixel size of the
        first one when it is known.

        An image field holds base64 or an http(s) URL; the service detects which ([R-EDIT], [R-ENH], [RMX]). Base64 is
        decoded and must be JPEG, PNG, WebP or HEIC ([R-EDIT], [R-ENH], [RN-0.1.1]) by its magic bytes, and readable.
        A URL on a loopback host, or one of the emulator's own download URLs, is fetched and checked the same way; it
        must answer 200 (our own URLs also need a valid, unexpired token). Other URLs are not fetched (the emulator
        never calls the internet) and are accepted unchecked.
        """
        fields: list[tuple[str, Any]]
        if endpoint is Endpoint.EDIT:
            fields = [(f"images[{index}]", value) for index, value in enumerate(body.get("images") or [])]
        else:
            names = {Endpoint.ENHANCE: ("image",), Endpoint.REMIX: ("input_image", "reference_image")}.get(endpoint, ())
            fields = [(name, body.get(name)) for name in names]
        checks = await asyncio.gather(*(self._read_input_image(value) for _, value in fields))
        problems = [f"{name}: {problem}" for (name, _), (_, problem) in zip(fields, checks, strict=True) if problem]
        if problems:
            raise ApiError(400, "; ".join(problems), ErrorType.INVALID_REQUEST)
        first = checks[0][0] if checks else None
        return await self.in_executor(images.input_image_size, first) if first else None

    async def _read_input_image(self, value: Any) -> tuple[bytes | None, str | None]:
        """``(bytes, None)`` for an acceptable image, ``(None, None)`` for a URL that is not fetched, ``(None,
        problem)`` for anything the service would refuse."""
        if not isinstance(value, str):  # the contract already refused it
            return None, None
        if value[:8].lower().startswith(("http://", "https://")):
            if not self.fetches(value):
                return None, None
            data, problem = await self.fetch_image(value)
            if problem is not None or data is None:
                return None, f"{value[:80]} {problem or 'could not be fetched'}"
            problem = await self.in_executor(images.input_image_problem, data)
            return (None, f"{value[:80]} {problem}") if problem else (data, None)
        data = await self.in_executor(_decode_base64, value)
        if data is None:
            return None, "is neither an http(s) URL nor base64 data"
        problem = await self.in_executor(images.input_image_problem, data)
        return (None, f"the base64 data {problem}") if problem else (data, None)

    async def in_executor(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


_BASE64_WHITESPACE = re.compile(r"\s+")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _decode_base64(value: str) -> bytes | None:
    """Raw base64 (standard alphabet; line breaks and missing padding tolerated), or ``None`` when it is not base64.
    A data URI (``data:image/png;base64,...``) is not raw base64 ([R-EDIT]: an image is raw base64 or a URL)."""
    text = _BASE64_WHITESPACE.sub("", value)
    if not text or not _BASE64_TEXT.fullmatch(text) or len(text.rstrip("=")) % 4 == 1:
        return None
    try:
        return base64.b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _render(width: int, height: int, seed_text: str, caption: str, index: int, output_format: str) -> bytes:
    fmt: images.OutputFormat = "jpg" if output_format == "jpg" else "png"
    return images.render_image(width, height, seed_text=seed_text, caption=caption, index=index, output_format=fmt)
