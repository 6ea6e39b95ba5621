"""The pages behind the links in residents' notices ("Is it fixed?", which messages to get),
rendered in the pages' shell. Pure: the routes (``geo311.api.notices``) read and write.

The words are the notices' own (``geo311.kernel.notify.templates``), so a mail and the page
it links to say the same thing; the template escapes every value.
"""

from __future__ import annotations

from collections.abc import Sequence

from geo311.kernel.notify.models import KINDS
from geo311.kernel.notify.templates import text
from maps.shell import PageContext, render


def answer_form(
    context: PageContext, *, token: str, chosen: str | None, category: str, tracking_id: str
) -> str:
    """Return the "Is it fixed?" page: the question and a button for each answer."""
    lang = context.language
    buttons = [
        ("fixed", "yes", text(lang, "closed.fixed")),
        ("not_fixed", "no", text(lang, "closed.not_fixed")),
    ]
    return render(
        "notice.html",
        context,
        title=text(lang, "page.answer.title"),
        heading=text(lang, "page.answer.title"),
        message=text(lang, "page.answer.question", category=category, tracking_id=tracking_id),
        form_action="/notices/answer",
        token=token,
        buttons=[(value, css, label, value == chosen) for value, css, label in buttons],
        help=text(lang, "closed.not_fixed_help"),
    )


def answer_result(context: PageContext, *, outcome: str, tracking_id: str | None) -> str:
    """Return the page shown after an answer, with a way on to the report's own page."""
    lang = context.language
    return render(
        "notice.html",
        context,
        title=text(lang, "page.answer.title"),
        heading=text(lang, "page.answer.title"),
        message=text(lang, f"page.answer.{outcome}"),
        status=True,
        tracking_id=tracking_id,
    )


def preferences_form(context: PageContext, *, token: str, muted: Sequence[str], saved: bool) -> str:
    """Return the page where a requester picks the notices they want."""
    lang = context.language
    return render(
        "notice.html",
        context,
        title=text(lang, "page.preferences.title"),
        heading=text(lang, "page.preferences.title"),
        saved=text(lang, "page.preferences.saved") if saved else None,
        message=text(lang, "page.preferences.intro"),
        form_action="/notices/preferences",
        token=token,
        kinds=[(kind, text(lang, f"kind.{kind}"), kind not in muted) for kind in KINDS],
        buttons=[
            (None, "yes", text(lang, "page.preferences.save"), False),
            ("all", "plain", text(lang, "page.preferences.stop_all"), False),
        ],
        button_name="stop",
    )


def link_problem(context: PageContext, *, title: str, detail: str) -> str:
    """Return the page for a notice link that cannot be used (expired, forged, outdated)."""
    return render("notice.html", context, title=title, heading=title, message=detail, problem=True)
