"""The words of every notice, in English and Spanish, and how they are laid out. Pure.

``context`` is what the notice was owed with (category, tracking id, resolution …; a crew's
note is staff-only and never written to a resident);
``Links`` are made at send time. Every value that reaches HTML is escaped; plain text and
SMS carry values as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Any, Final

from babel.dates import format_date

LANGUAGES: Final = ("en", "es")
DEFAULT_LANGUAGE: Final = "en"

CATALOG: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        "received.subject": "We got your report {tracking_id}: {category}",
        "received.lead": "Thank you for reporting a problem: {category}.",
        "received.body": (
            "Your tracking number is {tracking_id}. We will tell you when the work is "
            "scheduled and when it is done."
        ),
        "scheduled.subject": "Scheduled: {category} ({tracking_id})",
        "scheduled.lead": "The work on your report is scheduled.",
        "scheduled.body": (
            "A crew is scheduled to fix the problem you reported: {category} ({tracking_id}). "
            "We will tell you when it is done."
        ),
        "scheduled.when": "The crew plans to come on {day}.",
        "closed.subject": "Fixed: {category} ({tracking_id})",
        "closed.lead": "The problem you reported has been dealt with.",
        "closed.body": "Your report {tracking_id} ({category}) is closed: {resolution}.",
        "closed.photo": "Photo taken after the work:",
        "closed.photo_attached": "A photo taken after the work is attached.",
        "closed.question": "Is it fixed?",
        "closed.fixed": "Yes, it's fixed",
        "closed.not_fixed": "No, it's not fixed",
        "closed.not_fixed_help": (
            "If it is not fixed, tell us: we will reopen your report and send a crew back."
        ),
        "track": "Follow your report",
        "footer": "You get this message because you reported this problem to {city}.",
        "preferences": "Choose which messages you get",
        "sms.received": "{city}: we got your report {tracking_id} ({category}).",
        "sms.scheduled": "{city}: work on your report {tracking_id} ({category}) is scheduled.",
        "sms.scheduled_on": (
            "{city}: work on your report {tracking_id} ({category}) is scheduled for {day}."
        ),
        "sms.closed": (
            "{city}: your report {tracking_id} ({category}) is closed: {resolution}. "
            "Not fixed? {url}"
        ),
        "page.answer.title": "Is it fixed?",
        "page.answer.question": "Is the problem you reported fixed? {category} ({tracking_id})",
        "page.answer.thanks_fixed": "Thank you! We are glad it is fixed.",
        "page.answer.thanks_not_fixed": (
            "Thank you for telling us. We reopened your report and will send a crew back."
        ),
        "page.answer.already": "Thank you: your report is already back in the work queue.",
        "page.answer.fixed_but_reopened": (
            "Thank you. Your report was reopened after an earlier \u201cnot fixed\u201d "
            "answer, so it stays open: a crew will come back to check it."
        ),
        "page.answer.outdated": (
            "This link belongs to an earlier notice: your report has changed since. "
            "The latest notice has a link that works."
        ),
        "follow.subject": "Confirm: updates about {category} ({tracking_id})",
        "follow.lead": "Do you want updates about this report?",
        "follow.body": (
            "Someone asked for e-mail updates about report {tracking_id} ({category}) to be "
            "sent to this address. If that was you, confirm below; if not, ignore this "
            "message and you will get nothing more."
        ),
        "follow.confirm": "Yes, send me updates",
        "follow.footer": "You get this one message because this address was typed on the "
        "report's page at {city}.",
        "page.follow.title": "Updates about a report",
        "page.follow.question": "Send updates about report {tracking_id} ({category}) to {email}?",
        "page.follow.done": "Done: {email} will get updates about report {tracking_id}.",
        "page.follow.already": "{email} already gets updates about report {tracking_id}.",
        "page.preferences.title": "Your messages about reports",
        "page.preferences.intro": "Choose which messages you want to get:",
        "page.preferences.save": "Save",
        "page.preferences.saved": "Saved. You will get only the messages you chose.",
        "page.preferences.stop_all": "Stop all messages",
        "kind.received": "when we get your report",
        "kind.scheduled": "when the work is scheduled",
        "kind.closed": "when it is fixed (with a photo)",
        "resolution.repaired": "repaired",
        "resolution.replaced": "replaced",
        "resolution.cleaned": "cleaned",
        "resolution.removed": "removed",
        "resolution.temporary_fix": "temporarily fixed",
        "resolution.no_issue_found": "no problem was found",
        "resolution.not_city_asset": "not the city's property",
        "resolution.referred": "referred to another agency",
        "resolution.none": "done",
    },
    "es": {
        "received.subject": "Recibimos su reporte {tracking_id}: {category}",
        "received.lead": "Gracias por reportar un problema: {category}.",
        "received.body": (
            "Su número de seguimiento es {tracking_id}. Le avisaremos cuando el trabajo esté "
            "programado y cuando esté terminado."
        ),
        "scheduled.subject": "Programado: {category} ({tracking_id})",
        "scheduled.lead": "El trabajo de su reporte está programado.",
        "scheduled.body": (
            "Una cuadrilla está programada para reparar el problema que reportó: "
            "{category} ({tracking_id}). Le avisaremos cuando esté terminado."
        ),
        "scheduled.when": "La cuadrilla planea venir el {day}.",
        "closed.subject": "Resuelto: {category} ({tracking_id})",
        "closed.lead": "El problema que reportó fue atendido.",
        "closed.body": "Su reporte {tracking_id} ({category}) se cerró: {resolution}.",
        "closed.photo": "Foto tomada después del trabajo:",
        "closed.photo_attached": "Adjuntamos una foto tomada después del trabajo.",
        "closed.question": "¿Quedó resuelto?",
        "closed.fixed": "Sí, está resuelto",
        "closed.not_fixed": "No, no está resuelto",
        "closed.not_fixed_help": (
            "Si no está resuelto, díganoslo: reabriremos su reporte y enviaremos una "
            "cuadrilla de nuevo."
        ),
        "track": "Siga su aviso",
        "footer": "Recibe este mensaje porque reportó este problema a {city}.",
        "preferences": "Elegir qué mensajes recibe",
        "sms.received": "{city}: recibimos su reporte {tracking_id} ({category}).",
        "sms.scheduled": "{city}: el trabajo de su reporte {tracking_id} ({category}) "
        "está programado.",
        "sms.scheduled_on": "{city}: el trabajo de su reporte {tracking_id} ({category}) "
        "está programado para el {day}.",
        "sms.closed": (
            "{city}: su reporte {tracking_id} ({category}) se cerró: {resolution}. "
            "¿No está resuelto? {url}"
        ),
        "page.answer.title": "¿Quedó resuelto?",
        "page.answer.question": (
            "¿Quedó resuelto el problema que reportó? {category} ({tracking_id})"
        ),
        "page.answer.thanks_fixed": "¡Gracias! Nos alegra que esté resuelto.",
        "page.answer.thanks_not_fixed": (
            "Gracias por avisarnos. Reabrimos su reporte y enviaremos una cuadrilla de nuevo."
        ),
        "page.answer.already": "Gracias: su reporte ya está de nuevo en la cola de trabajo.",
        "page.answer.fixed_but_reopened": (
            "Gracias. Su reporte se reabrió tras una respuesta anterior de \u201cno está "
            "resuelto\u201d, así que sigue abierto: una cuadrilla volverá a revisarlo."
        ),
        "page.answer.outdated": (
            "Este enlace es de un aviso anterior: su reporte cambió desde entonces. "
            "El aviso más reciente tiene un enlace que funciona."
        ),
        "follow.subject": "Confirme: novedades de {category} ({tracking_id})",
        "follow.lead": "¿Quiere recibir novedades de este reporte?",
        "follow.body": (
            "Alguien pidió que las novedades del reporte {tracking_id} ({category}) se "
            "envíen a esta dirección. Si fue usted, confírmelo abajo; si no, ignore este "
            "mensaje y no recibirá nada más."
        ),
        "follow.confirm": "Sí, enviarme novedades",
        "follow.footer": "Recibe este único mensaje porque esta dirección se escribió en la "
        "página del reporte de {city}.",
        "page.follow.title": "Novedades de un reporte",
        "page.follow.question": "¿Enviar novedades del reporte {tracking_id} ({category}) a "
        "{email}?",
        "page.follow.done": "Listo: {email} recibirá novedades del reporte {tracking_id}.",
        "page.follow.already": "{email} ya recibe novedades del reporte {tracking_id}.",
        "page.preferences.title": "Sus mensajes sobre reportes",
        "page.preferences.intro": "Elija qué mensajes quiere recibir:",
        "page.preferences.save": "Guardar",
        "page.preferences.saved": "Guardado. Solo recibirá los mensajes que eligió.",
        "page.preferences.stop_all": "No recibir ningún mensaje",
        "kind.received": "cuando recibimos su reporte",
        "kind.scheduled": "cuando el trabajo está programado",
        "kind.closed": "cuando está resuelto (con una foto)",
        "resolution.repaired": "reparado",
        "resolution.replaced": "reemplazado",
        "resolution.cleaned": "limpiado",
        "resolution.removed": "retirado",
        "resolution.temporary_fix": "reparación provisional",
        "resolution.no_issue_found": "no se encontró el problema",
        "resolution.not_city_asset": "no es propiedad municipal",
        "resolution.referred": "remitido a otra entidad",
        "resolution.none": "terminado",
        # Names of the demo city's categories; other categories keep their stored name.
        "category.pothole": "Bache",
        "category.streetlight_out": "Farola apagada",
        "category.hydrant_leak": "Fuga en un hidrante",
        "category.tree_down": "Árbol o rama caída",
        "category.graffiti": "Grafiti",
        "category.illegal_dumping": "Vertido ilegal",
        "category.sidewalk_damage": "Acera dañada",
        "category.missed_collection": "Recolección no realizada",
    },
}


@dataclass(frozen=True)
class Links:
    """The URLs a notice carries (each None when it has none)."""

    fixed_url: str | None = None
    not_fixed_url: str | None = None
    preferences_url: str | None = None
    photo_url: str | None = None
    confirm_url: str | None = None  # a "follow" notice's confirmation link
    track_url: str | None = None  # the report's public tracking page


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


def language_of(tag: str | None) -> str:
    """Return the catalogue language for a language tag: "es-MX" → "es"; unknown → "en"."""
    base = (tag or "").split("-")[0].lower()
    return base if base in CATALOG else DEFAULT_LANGUAGE


def text(language: str, key: str, **values: object) -> str:
    """Return the catalogue text ``key`` in ``language`` (English if missing), filled in."""
    catalogue = CATALOG[language_of(language)]
    template = catalogue.get(key) or CATALOG[DEFAULT_LANGUAGE][key]
    return template.format(**{k: "" if v is None else v for k, v in values.items()})


def html_text(language: str, key: str, **values: object) -> str:
    """Return ``text`` escaped for HTML, with every value escaped as well."""
    catalogue = CATALOG[language_of(language)]
    template = catalogue.get(key) or CATALOG[DEFAULT_LANGUAGE][key]
    return escape(template).format(
        **{k: escape("" if v is None else str(v)) for k, v in values.items()}
    )


def category_name(language: str, context: Mapping[str, Any]) -> str:
    """Return the category's name in ``language`` when the catalogue has it, else as stored."""
    code = str(context.get("category_code") or "")
    translated = CATALOG[language_of(language)].get(f"category.{code}")
    return translated or str(context.get("category") or code)


def resolution_label(language: str, code: str | None) -> str:
    key = f"resolution.{code}" if code else "resolution.none"
    if key not in CATALOG[DEFAULT_LANGUAGE]:
        return code or text(language, "resolution.none")
    return text(language, key)


def planned_day(language: str, context: Mapping[str, Any]) -> str | None:
    """Return the day a plan scheduled the work for, written out in ``language`` ("Monday,
    June 1, 2026"), or None when the notice names no day."""
    raw = context.get("scheduled_for")
    if not raw:
        return None
    try:
        day = date.fromisoformat(str(raw))
    except ValueError:
        return None
    return format_date(day, format="full", locale=language)


def _values(language: str, context: Mapping[str, Any]) -> dict[str, object]:
    return {
        "day": planned_day(language, context),
        "category": category_name(language, context),
        "tracking_id": context.get("tracking_id") or f"#{context.get('incident_id')}",
        "resolution": resolution_label(language, context.get("resolution_code")),
        "city": context.get("city") or "your city",
    }


def render_email(
    kind: str,
    language: str,
    context: Mapping[str, Any],
    links: Links,
    *,
    photo_cid: str | None = None,
) -> EmailContent:
    """Return subject, plain text and HTML of an email notice.

    ``photo_cid`` is the Content-ID (without brackets) of the after-photo attached inline,
    or None when the mail carries no photo.
    """
    lang = language_of(language)
    values = _values(lang, context)
    subject = text(lang, f"{kind}.subject", **values)
    lines = [text(lang, f"{kind}.lead", **values), "", text(lang, f"{kind}.body", **values)]
    html = [
        f'<p style="font-size:18px;font-weight:600">{html_text(lang, f"{kind}.lead", **values)}'
        "</p>",
        f"<p>{html_text(lang, f'{kind}.body', **values)}</p>",
    ]
    if kind == "scheduled" and values["day"]:
        lines += ["", text(lang, "scheduled.when", **values)]
        html.append(f"<p>{html_text(lang, 'scheduled.when', **values)}</p>")
    if kind == "closed":
        if photo_cid is not None:
            lines += ["", text(lang, "closed.photo_attached")]
            html.append(
                f"<p>{html_text(lang, 'closed.photo')}<br>"
                f'<img src="cid:{escape(photo_cid)}" alt="" '
                'style="max-width:100%;height:auto;border-radius:6px"></p>'
            )
        if links.fixed_url and links.not_fixed_url:
            lines += [
                "",
                text(lang, "closed.question"),
                f"  {text(lang, 'closed.fixed')}: {links.fixed_url}",
                f"  {text(lang, 'closed.not_fixed')}: {links.not_fixed_url}",
                text(lang, "closed.not_fixed_help"),
            ]
            html.append(
                f'<p style="font-weight:600">{html_text(lang, "closed.question")}</p><p>'
                + _button(links.fixed_url, html_text(lang, "closed.fixed"), "#0a7d36")
                + " "
                + _button(links.not_fixed_url, html_text(lang, "closed.not_fixed"), "#b3261e")
                + f'</p><p style="color:#555">{html_text(lang, "closed.not_fixed_help")}</p>'
            )
    if kind == "follow" and links.confirm_url:
        lines += ["", f"{text(lang, 'follow.confirm')}: {links.confirm_url}"]
        html.append(
            "<p>"
            + _button(links.confirm_url, html_text(lang, "follow.confirm"), "#0a7d36")
            + "</p>"
        )
    if links.track_url:
        lines += ["", f"{text(lang, 'track')}: {links.track_url}"]
        html.append(f'<p><a href="{escape(links.track_url)}">{html_text(lang, "track")}</a></p>')
    footer_key = "follow.footer" if kind == "follow" else "footer"
    lines += ["", "--", text(lang, footer_key, **values)]
    footer = html_text(lang, footer_key, **values)
    if links.preferences_url:
        lines.append(f"{text(lang, 'preferences')}: {links.preferences_url}")
        footer += f' <a href="{escape(links.preferences_url)}">{html_text(lang, "preferences")}</a>'
    html.append(f'<hr><p style="color:#555;font-size:13px">{footer}</p>')
    body = "\n".join(html)
    document = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{escape(subject)}</title></head>"
        '<body style="font:16px/1.45 system-ui,sans-serif;max-width:36rem;margin:auto;'
        f'padding:1rem">{body}</body></html>'
    )
    return EmailContent(subject=subject, text="\n".join(lines) + "\n", html=document)


def _button(url: str, label_html: str, colour: str) -> str:
    return (
        f'<a href="{escape(url)}" style="display:inline-block;padding:10px 16px;'
        f"background:{colour};color:#fff;text-decoration:none;border-radius:6px;"
        f'margin:4px 0">{label_html}</a>'
    )


def render_sms(kind: str, language: str, context: Mapping[str, Any], links: Links) -> str:
    """Return the text of an SMS notice (short; the closure carries the "not fixed" link)."""
    lang = language_of(language)
    values = _values(lang, context)
    key = "sms.scheduled_on" if kind == "scheduled" and values["day"] else f"sms.{kind}"
    return text(lang, key, url=links.not_fixed_url or "", **values)


def webhook_payload(
    *,
    kind: str,
    idempotency_key: str,
    created_at: str,
    context: Mapping[str, Any],
    links: Links,
) -> dict[str, Any]:
    """Return the JSON body of a webhook delivery."""
    data = {k: v for k, v in context.items() if k not in {"city"}}
    if links.photo_url:
        data["after_photo_url"] = links.photo_url
    return {
        "id": idempotency_key,
        "type": f"incident.{kind}",
        "created_at": created_at,
        "data": data,
    }
