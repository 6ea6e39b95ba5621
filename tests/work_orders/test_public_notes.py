"""The public wordings: chosen words with public values only, in English and Spanish."""

from __future__ import annotations

import string

import pytest

from geo311.kernel.notify.templates import CATALOG
from work_orders.models import RESOLUTION_CODES
from work_orders.public_notes import WORDINGS, PublicNote


def test_a_resolution_is_worded_for_the_public_in_the_residents_language() -> None:
    note = PublicNote("resolved", {"resolution_code": "temporary_fix"})
    assert note.text() == "Resolved: temporarily fixed."
    assert note.text("es") == "Resuelto: reparación provisional."
    assert note.text("es-MX") == "Resuelto: reparación provisional."
    # A language without a catalogue falls back to English.
    assert note.text("fr") == "Resolved: temporarily fixed."
    assert note.as_data() == {"key": "resolved", "resolution_code": "temporary_fix"}


@pytest.mark.parametrize("code", RESOLUTION_CODES)
def test_every_resolution_code_has_public_words_in_every_language(code: str) -> None:
    for language in WORDINGS:
        text = PublicNote("resolved", {"resolution_code": code}).text(language)
        # Words from the notices' catalogue, never the code (like not_city_asset) itself.
        assert text == WORDINGS[language]["resolved"].format(
            resolution=CATALOG[language][f"resolution.{code}"]
        )
        assert "_" not in text


def test_every_wording_exists_in_every_language_with_the_same_values() -> None:
    english = WORDINGS["en"]
    for language, wordings in WORDINGS.items():
        assert set(wordings) == set(english), language
        for key, text in wordings.items():
            assert sorted(_fields(text)) == sorted(_fields(english[key])), (language, key)


def test_an_unknown_wording_is_refused() -> None:
    with pytest.raises(ValueError, match="no public wording"):
        PublicNote("the dispatcher's own words")


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]
