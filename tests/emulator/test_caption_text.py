"""Emulator images draw prompt text that is not plain ASCII ("café", Greek, emoji) without .notdef boxes (tofu)."""

from __future__ import annotations

import pytest
from PIL import ImageChops, ImageFont

from airflow_provider_phota.testing import images

PROMPT = "A café ☕ for Zoë 😀 in 東京 Ωμέγα"


def _notdef_free(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> bool:
    notdef = bytes(font.getmask("\U0010ffff"))
    return all(char.isspace() or bytes(font.getmask(char)) != notdef for char in text)


@pytest.mark.parametrize("font", [images.caption_font(24), ImageFont.load_default(size=24)], ids=["chosen", "builtin"])
def test_drawable_text_has_a_glyph_for_every_character(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> None:
    assert not _notdef_free(PROMPT, ImageFont.load_default(size=24))  # the built-in font alone draws boxes
    text = images.drawable_text(PROMPT, font)
    assert _notdef_free(text, font)
    assert "caf" in text  # accented words are kept (as "café" or "cafe"), not dropped
    assert "Zo" in text


def test_the_builtin_font_gets_letters_without_accents() -> None:
    assert images.drawable_text("café Zoë 東京", ImageFont.load_default(size=24)) == "cafe Zoe"


def test_the_chosen_font_covers_accents_when_debian_fonts_are_installed() -> None:
    font = images.caption_font(24)
    if not isinstance(font, ImageFont.FreeTypeFont) or font.getname()[0] not in {"DejaVu Sans", "Liberation Sans"}:
        pytest.skip("neither fonts-dejavu-core nor fonts-liberation is installed")
    assert images.drawable_text("café Zoë", font) == "café Zoë"


def test_images_draw_the_filtered_caption() -> None:
    font = images.caption_font(max(10, 256 // 14))
    drawn = images.draw_image(256, 256, seed_text="s", caption=PROMPT, index=0)
    expected = images.draw_image(256, 256, seed_text="s", caption=images.drawable_text(PROMPT, font), index=0)
    assert ImageChops.difference(drawn, expected).getbbox() is None
