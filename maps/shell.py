"""The shared layout of every page: header (the city's name, the pages, the signed-in user, the
language switch), a skip link and landmarks; the page's own content in <main>.

Templates are Jinja2 with autoescaping on, so every value a page passes in is escaped; only
the folium parts (which carry no user text, see maps.folium_assets.render) are passed as
Markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

__all__ = ["Markup", "PageContext", "render"]

from maps import i18n
from maps.assets import MAPS_DIR, own_url

_ENV = Environment(
    loader=FileSystemLoader(MAPS_DIR / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals["own_url"] = own_url

# The pages in the header's navigation: (path, message key).
NAVIGATION: tuple[tuple[str, str], ...] = (("/report", "page.report"), ("/map", "page.map"))
# The staff pages, each shown only to the roles the page lets in: (path, message key, roles).
ROLE_NAVIGATION: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("/planner", "page.planner", frozenset({"planner", "dispatcher", "admin"})),
    ("/crew", "page.crew", frozenset({"crew", "dispatcher", "admin"})),
    ("/dispatch", "page.dispatch", frozenset({"dispatcher", "admin"})),
)


@dataclass(frozen=True)
class PageContext:
    """What the shell needs from every page."""

    language: str
    city: str
    user_name: str | None
    path: str
    # The signed-in session's CSRF token, for the header's sign-out form (None: nobody).
    csrf_token: str | None = None
    # The signed-in user's role, for the staff pages in the navigation (None: nobody).
    user_role: str | None = None
    # Query parameters the language switch keeps besides ``lang`` (e.g. /login's ``next``).
    language_query: tuple[tuple[str, str], ...] = ()


def render(
    template: str,
    context: PageContext,
    *,
    title: str,
    head: Markup | str = "",
    scripts: Markup | str = "",
    **values: Any,
) -> str:
    """Return the page ``template`` (which extends shell.html) rendered in the shell."""
    words: Mapping[str, str] = i18n.messages(context.language)
    return _ENV.get_template(template).render(
        lang=context.language,
        t=words,
        city=context.city,
        user_name=context.user_name,
        csrf_token=context.csrf_token,
        path=context.path,
        title=title,
        navigation=[(p, words[k]) for p, k in NAVIGATION]
        + [(p, words[k]) for p, k, roles in ROLE_NAVIGATION if context.user_role in roles],
        languages=i18n.languages(),
        language_hrefs={
            code: f"{context.path}?{urlencode((*context.language_query, ('lang', code)))}"
            for code in i18n.LANGUAGES
        },
        head=head,
        scripts=scripts,
        **values,
    )
