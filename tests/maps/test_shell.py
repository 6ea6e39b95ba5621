"""The shell on its own: the signed-in user's name is shown, escaped; no user, no name."""

from __future__ import annotations

from maps import shell


def test_the_signed_in_user_is_named_escaped() -> None:
    context = shell.PageContext(language="es", city="Demo", user_name="<i>Ana</i>", path="/map")
    page = shell.render("shell.html", context, title="T")
    assert "Sesión iniciada como <strong>&lt;i&gt;Ana&lt;/i&gt;</strong>" in page
    anonymous = shell.PageContext(language="en", city="Demo", user_name=None, path="/map")
    assert "Signed in as" not in shell.render("shell.html", anonymous, title="T")


def test_the_planner_page_is_in_the_navigation_for_the_roles_it_lets_in_only() -> None:
    def links(role: str | None) -> bool:
        context = shell.PageContext(
            language="en", city="Demo", user_name=role, path="/map", user_role=role
        )
        return '<a href="/planner">Ward heatmaps</a>' in shell.render(
            "shell.html", context, title="T"
        )

    assert [r for r in ("planner", "dispatcher", "admin") if links(r)] == [
        "planner",
        "dispatcher",
        "admin",
    ]
    assert not links("crew")
    assert not links(None)
