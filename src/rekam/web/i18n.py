"""Translations for the web pages: Bahasa Indonesia and English."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources

LANGUAGES = {"id": "Bahasa Indonesia", "en": "English"}
FALLBACK = "en"

Translator = Callable[..., str]


@cache
def catalog(language: str) -> dict[str, str]:
    """Every message of a language: the union of ``locales/<language>/*.json`` (one file per
    area of the app, so each area keeps its own texts)."""
    if language not in LANGUAGES:
        language = FALLBACK
    messages: dict[str, str] = {}
    folder = resources.files("rekam.web").joinpath(f"locales/{language}")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            messages.update(json.loads(entry.read_text("utf-8")))
    return messages


def translator(language: str) -> Translator:
    messages = catalog(language)
    fallback = catalog(FALLBACK)

    def translate(key: str, **values: object) -> str:
        template = messages.get(key) or fallback.get(key) or key
        return template.format(**values) if values else template

    return translate


def choose_language(
    cookie_value: str | None, user_preference: str | None, clinic_default: str
) -> str:
    for candidate in (cookie_value, user_preference, clinic_default):
        if candidate in LANGUAGES:
            return candidate
    return FALLBACK
