"""Deterministic, real images for the emulator, drawn with Pillow, and the check of input images.

Every output must be a valid PNG/JPEG of the exact size the contract promises (api-decisions D14), and outputs must
differ visibly per prompt and per output index, so a client bug that mixes up results shows in a test. Drawing stays
cheap even at 4K: a tiny gradient is upscaled (smooth areas compress well) and a few shapes and the caption are drawn
on top. :func:`input_image_problem` says why the service would refuse an input image (wrong format, unreadable).
"""

from __future__ import annotations

import functools
import hashlib
import io
import unicodedata
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from airflow_provider_phota.contract import image_format

OutputFormat = Literal["png", "jpg"]

PNG_COMPRESS_LEVEL = 1  # fast; the smooth gradients compress well anyway
JPEG_QUALITY = 90
PROFILE_PICTURE_SIZE = 512
# Fonts with wide coverage (accents, Greek, Cyrillic, many symbols), from Debian's fonts-dejavu-core and
# fonts-liberation when installed; Pillow's built-in font (Latin letters without accents) otherwise.
FONT_FILES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf")
_NOT_A_CHARACTER = "\U0010ffff"  # never has a glyph: what a font draws for it is its .notdef box


def _palette(seed_text: str, index: int) -> list[tuple[int, int, int]]:
    """Four colours derived from a hash, so the same seed and index always give the same picture."""
    digest = hashlib.sha256(f"{seed_text}\x00{index}".encode()).digest()
    return [(digest[i], digest[i + 1], digest[i + 2]) for i in range(0, 12, 3)]


def _contrasting(color: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def draw_image(width: int, height: int, *, seed_text: str, caption: str, index: int) -> Image.Image:
    """An RGB picture: a four-corner gradient, a disc and a band placed by the hash, and the caption as text."""
    top_left, top_right, bottom_left, bottom_right = _palette(seed_text, index)
    corners = Image.new("RGB", (2, 2))
    corners.putdata([top_left, top_right, bottom_left, bottom_right])
    image = corners.resize((width, height), Image.Resampling.BILINEAR)

    draw = ImageDraw.Draw(image)
    short_side = min(width, height)
    digest = hashlib.sha256(f"{seed_text}\x01{index}".encode()).digest()
    radius = max(2, short_side * (15 + digest[0] % 20) // 100)
    centre_x = radius + (width - 2 * radius) * digest[1] // 255
    centre_y = radius + (height - 2 * radius) * digest[2] // 255
    draw.ellipse((centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius), fill=bottom_right)
    band_y = height * digest[3] // 255
    draw.rectangle((0, band_y, width, band_y + max(2, height // 20)), fill=top_right)

    ink = _contrasting(top_left)
    font_size = max(10, short_side // 14)
    font = caption_font(font_size)
    margin = max(4, short_side // 30)
    lines = [f"#{index + 1}", *_wrap(drawable_text(caption, font), max(10, width // max(1, font_size // 2) - 4))][:6]
    for line_no, line in enumerate(lines):
        draw.text((margin, margin + line_no * int(font_size * 1.25)), line, fill=ink, font=font)
    return image


@functools.cache
def caption_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The first of :data:`FONT_FILES` that is installed, else Pillow's built-in font."""
    for name in FONT_FILES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


@functools.cache
def _has_glyph(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, char: str) -> bool:
    return char.isspace() or bytes(font.getmask(char)) != bytes(font.getmask(_NOT_A_CHARACTER))


def drawable_text(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """``text`` with every character ``font`` has no glyph for replaced by its letters without accents ("é" -> "e")
    or, when that does not help (emoji in most fonts), dropped, so a caption is never drawn as .notdef boxes."""
    kept = []
    for char in text:
        if not _has_glyph(font, char):
            char = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            char = "".join(c for c in char if _has_glyph(font, c))
        kept.append(char)
    return " ".join("".join(kept).split())


def _wrap(text: str, width: int) -> list[str]:
    words, lines, current = text.split(), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines


def encode(image: Image.Image, output_format: OutputFormat) -> bytes:
    buffer = io.BytesIO()
    if output_format == "jpg":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def render_image(
    width: int, height: int, *, seed_text: str, caption: str, index: int, output_format: OutputFormat
) -> bytes:
    """Encoded output image ``index`` for a request identified by ``seed_text``."""
    return encode(draw_image(width, height, seed_text=seed_text, caption=caption, index=index), output_format)


def render_profile_picture(profile_id: str) -> bytes:
    """The JPEG a READY profile shows as its picture (api-decisions D16); derived from the id only."""
    return render_image(
        PROFILE_PICTURE_SIZE,
        PROFILE_PICTURE_SIZE,
        seed_text=f"profile:{profile_id}",
        caption=profile_id,
        index=0,
        output_format="jpg",
    )


def image_size(data: bytes) -> tuple[int, int] | None:
    """Pixel size of an encoded image, or ``None`` when Pillow cannot read it (only the header is parsed)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


def is_decodable_image(data: bytes) -> bool:
    """True when the bytes are a complete image Pillow can decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except Exception:
        return False


# --- input images: what the service accepts --------------------------------------------------------------------
#
# The service takes JPEG, PNG, WebP and HEIC/HEIF inputs only ([R-EDIT], [R-ENH], [R-ADD], [RN-0.1.1]). The emulator
# recognises them by their first bytes, written out here on purpose instead of imported from the client side, so
# that a wrong rule on the client side shows up as a refusal in the emulator's tests.

INPUT_FORMATS_TEXT = "a JPEG, PNG, WebP or HEIC image"
# Major brands of an ISO-BMFF ``ftyp`` box that mean HEIC/HEIF. Only the major brand counts: AVIF files list
# ``mif1`` among their compatible brands, and AVIF is not an accepted format.
# Formats Pillow reads without plugins; HEIC needs one (pillow-heif), so the emulator checks HEIC by its header only.
PILLOW_FORMATS = frozenset({"jpeg", "png", "webp"})


def input_image_problem(data: bytes, *, full_decode: bool = False) -> str | None:
    """Why the service would refuse these bytes as an input image, or ``None`` when they are acceptable.

    The format must be one of the four accepted ones; a JPEG, PNG or WebP must also be readable (its header by
    default, the whole image with ``full_decode``, which training images get). HEIC is checked by its header only.
    """
    if not data:
        return "is empty"
    fmt = image_format(data)
    if fmt is None:
        return f"is not {INPUT_FORMATS_TEXT} (it starts with {data[:12]!r})"
    if fmt in PILLOW_FORMATS:
        readable = is_decodable_image(data) if full_decode else image_size(data) is not None
        if not readable:
            return f"is not a readable {fmt.upper()} image"
    return None


def input_image_size(data: bytes) -> tuple[int, int] | None:
    """Pixel size of an accepted input image; ``None`` for HEIC (not parsed) or anything unreadable."""
    return image_size(data) if image_format(data) in PILLOW_FORMATS else None
