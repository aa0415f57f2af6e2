"""Sample subject photos and a loopback file server, for the demo, the example DAGs and users' own tests.

Profile training takes image URLs, and the emulator (like the real service) checks that loopback URLs are
reachable images. So tests need real files behind real URLs: :func:`make_subject_photos` draws a set of photos of
one stylised subject (varied angle, light and background, as the service's photo guidance asks), and
:class:`PhotoServer` serves a folder on 127.0.0.1.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import io
import threading
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFilter

from airflow_provider_phota.storage import IMAGE_SUFFIXES


def make_subject_photos(
    folder: str | Path, count: int = 12, *, subject: str = "demo-subject", size: int = 768
) -> list[Path]:
    """Write ``count`` JPEG photos of one subject into ``folder`` and return their paths (sorted)."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seed = hashlib.sha256(subject.encode()).digest()
    skin = (200 + seed[0] % 40, 150 + seed[1] % 50, 120 + seed[2] % 50)
    hair = (seed[3] % 90, seed[4] % 70, seed[5] % 60)
    paths = []
    for index in range(count):
        light = 120 + (index * 37) % 120
        background = ((light + seed[6]) % 256, (light // 2 + seed[7]) % 256, (255 - light + seed[8]) % 256)
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        shift = (index % 5 - 2) * size // 14  # the subject turns from photo to photo
        cx, cy, r = size // 2 + shift, size // 2 + size // 20, size // 4
        draw.ellipse((cx - r - 8, cy - r - 30, cx + r + 8, cy + r // 3), fill=hair)  # hair
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=skin)  # face
        eye_dx = r // 2 - shift // 6
        for ex in (cx - eye_dx, cx + eye_dx - abs(shift) // 4):
            draw.ellipse((ex - r // 9, cy - r // 4, ex + r // 9, cy - r // 4 + r // 6), fill=(40, 30, 30))
        smile = (index % 3) * r // 10
        draw.arc(
            (cx - r // 2, cy + r // 6 - smile, cx + r // 2, cy + r // 2 + smile), 15, 165, fill=(120, 30, 40), width=6
        )
        draw.rectangle((cx - r, cy + r - 4, cx + r, size), fill=(60 + seed[9] % 100, 60, 90))  # shoulders
        if index % 4 == 3:
            image = image.filter(ImageFilter.GaussianBlur(1.2))
        path = folder / f"{subject}-{index:02d}.jpg"
        image.save(path, "JPEG", quality=88)
        paths.append(path)
    return sorted(paths)


def image_base64(
    width: int, height: int, *, image_format: str = "PNG", color: tuple[int, int, int] = (10, 200, 30)
) -> str:
    """A base64 image of the given size: an input for edit, enhance or remix requests in tests."""

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=image_format)
    return base64.b64encode(buffer.getvalue()).decode()


def open_image(data: bytes) -> Any:
    """A PIL image loaded from bytes (an output of the API or the emulator), ready to check size and format."""

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class PhotoServer:
    """Serve a folder over HTTP on 127.0.0.1 (an ephemeral port by default) in a background thread.

    ``with PhotoServer(folder) as server: server.url_for("a.jpg")``.
    """

    def __init__(self, folder: str | Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.folder = Path(folder)
        handler = functools.partial(_QuietHandler, directory=str(self.folder))
        self._server = http.server.ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="photo-server", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def url_for(self, name: str) -> str:
        return self.base_url + quote(name)

    def urls(self) -> list[str]:
        """URLs of every image in the folder, sorted by name."""
        return [self.url_for(p.name) for p in sorted(self.folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]

    def start(self) -> PhotoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PhotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
