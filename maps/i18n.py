"""The pages' words in each language, and which language a visitor gets.

The choice: ``?lang=xx`` (then remembered in a cookie), else the cookie, else the browser's
Accept-Language negotiated by Babel, else English. Language names come from Babel's CLDR data,
each in its own language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from babel import Locale, negotiate_locale

DEFAULT = "en"
COOKIE = "geo311_lang"

MESSAGES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "skip": "Skip to the main content",
        "pages": "Pages",
        "language": "Language",
        "signed_in_as": "Signed in as",
        "sign_in": "Staff sign-in",
        "sign_out": "Sign out",
        "page.report": "Report a problem",
        "page.map": "Map of reports",
        "map.title": "Reports on the map",
        "map.intro": "Open problems and those fixed in the last {days} days. No personal data "
        "is shown.",
        "map.label": "Map of open and recently fixed reports",
        "map.loading": "Loading reports…",
        "map.shown": "{shown} of {total} reports shown.",
        "map.failed": "The reports could not be loaded. Try again later.",
        "map.tiles_failed": "The background map could not be loaded; showing the city's own "
        "map of wards and streets.",
        "zoom.in": "Zoom in",
        "zoom.out": "Zoom out",
        "filter.title": "Filter and legend",
        "filter.category": "Category",
        "filter.status": "Status",
        "state.open": "Open",
        "state.fixed": "Fixed recently",
        "popup.reported": "Reported",
        "popup.reports": "Reports",
        "popup.tracking": "Tracking number",
        "popup.no_description": "No description.",
        "status.new": "Received",
        "status.triaged": "Reviewed",
        "status.assigned": "Assigned to a crew",
        "status.scheduled": "Scheduled",
        "status.in_progress": "Work in progress",
        "status.on_hold": "On hold",
        "status.reopened": "Reopened",
        "status.transferred": "Transferred",
        "status.completed": "Fixed",
        "status.closed": "Fixed",
        "status.cancelled": "Cancelled",
        "report.title": "Report a problem",
        "report.map_label": "Map: tap where the problem is",
        "report.pin_none": "Tap the map where the problem is, use your location, or choose a "
        "photo taken there.",
        "report.pin_tap": "Pin placed on the map. Drag it to adjust.",
        "report.pin_device": "Pin placed at your device's location. Drag it to adjust.",
        "report.pin_photo": "Pin moved to where the photo was taken (from its GPS). Drag it "
        "to adjust.",
        "report.photo_no_gps": "This photo has no location in it (phones often remove it). "
        "Tap the map or use your location.",
        "report.photo_unreadable": "The photo's location could not be read. Tap the map or "
        "use your location.",
        "report.locate": "Use my location",
        "report.locating": "Finding your location…",
        "report.locate_failed": "Your location is not available. Tap the map instead.",
        "report.places_photo_device": "The photo was taken {distance} from where your device "
        "is now.",
        "report.places_pin_photo": "The pin is {distance} from where the photo was taken.",
        "report.places_pin_device": "The pin is {distance} from your device's location.",
        "report.places_which": "Which place is right?",
        "report.places_photo_mark": "Where the photo was taken",
        "report.places_device_mark": "Your device's location",
        "report.places_use_photo": "Use the photo's place",
        "report.places_use_device": "Use my location",
        "report.places_keep": "Keep the pin where I put it",
        "report.ward": "Ward: {ward}",
        "report.outside": "This place is outside the city.",
        "report.ward_unknown": "The ward could not be looked up just now.",
        "report.need_pin": "Put a pin on the map first: tap where the problem is.",
        "report.category": "What is wrong?",
        "report.photo": "Photo (optional)",
        "report.photo_hint": "A photo with its location places the pin by itself.",
        "report.preview_alt": "The photo you chose",
        "report.description": "Details (optional)",
        "report.email": "E-mail for updates (optional, private)",
        "report.phone": "Phone (optional, private)",
        "report.contact_hint": "Only city staff see your e-mail and phone.",
        "report.language": "Language for updates",
        "report.send": "Send report",
        "report.sending": "Sending…",
        "report.done": "Thank you. Your tracking number is {tracking_id}.",
        "report.failed": "The report was not accepted.",
        "report.pin_label": "The problem's place (drag to adjust)",
        "report.track_link": "See report {tracking_id}",
        "nearby.title": "Already reported near here?",
        "nearby.intro": "These open problems of the same kind are close to your pin. If one "
        "is yours, follow it: your report joins it instead of starting a new one.",
        "nearby.distance": "{metres} m from your pin",
        "nearby.reports": "Residents who reported it: {count}",
        "nearby.photo_alt": "The reported problem, as photographed by a resident",
        "nearby.no_photo": "No photo",
        "nearby.follow": "This is my problem — follow it",
        "nearby.email": "Your e-mail address for updates",
        "nearby.send": "Send my report and follow it",
        "nearby.joined": "Your report joined request {followed}: {email} will get its updates.",
        "nearby.marker": "An open report of the same kind",
        "track.title": "Report",
        "track.received": "Received",
        "track.update": "Update",
        "track.day": "Planned for {day}.",
        "track.ward": "Ward",
        "track.residents": "Residents who reported it",
        "track.photo": "The photo sent with the report",
        "track.photo_alt": "The reported problem, as photographed by the resident",
        "track.after": "After the work",
        "track.after_alt": "The place after the work, as photographed by the crew",
        "track.timeline": "What has happened",
        "track.follow_other": "Follow request {tracking_id} instead",
        "track.map_label": "Map of where the problem is",
        "track.open311.open": "open",
        "track.open311.closed": "closed",
        "follow.title": "Updates by e-mail",
        "follow.intro": "Get an e-mail when this report is scheduled and when it is fixed. "
        "We first send a message to confirm the address.",
        "follow.email": "Your e-mail address",
        "follow.submit": "Send me updates",
        "follow.sent": "Check your e-mail: updates start once you confirm with the link we sent.",
        "follow.failed": "That did not work: {detail}",
        "follow.question": "Send updates about report {tracking_id} ({category}) to {email}?",
        "follow.confirm": "Yes, send me updates",
        "follow.done": "Done: {email} will get updates about report {tracking_id}.",
        "follow.already": "{email} already gets updates about report {tracking_id}.",
        "follow.back": "Back to report {tracking_id}",
        "track.missing_title": "No such report",
        "track.missing": "No report has the tracking number {tracking_id}. Check the number in "
        "the message you got when you reported it.",
        "page.planner": "Ward heatmaps",
        "planner.title": "Wards at a glance",
        "planner.map_label": "Map of the wards coloured by the chosen measure",
        "planner.measure": "Measure",
        "planner.view": "Show",
        "planner.view_value": "The ward's value",
        "planner.view_gap": "Gap from the city",
        "planner.all": "All",
        "planner.group": "Category group",
        "planner.from": "From",
        "planner.to": "To",
        "planner.hotspots": "Hotspot areas",
        "planner.heat": "Heat of reports",
        "planner.heat_legend": "Heat of reports: from few (blue) to the most in view (red); "
        "{reports} reports counted in cells of {cell_m} m",
        "planner.loading": "Loading the ward table…",
        "planner.failed": "The ward table could not be loaded: {detail}",
        "planner.shown": "{wards} wards, {reports} reports, {from} to {to}.",
        "planner.legend": "Legend",
        "planner.rates_note": "Per-resident rates measure who chooses to report as well as "
        "need: a low rate can mean residents who do not report, not fewer problems.",
        "planner.export": "Download the table",
        "planner.wards": "Wards",
        "planner.ward": "Ward",
        "planner.gap": "Gap from the city",
        "planner.rank": "Rank",
        "planner.city": "City",
        "planner.too_few": "Too few cases",
        "planner.not_ranked": "not ranked",
        "planner.no_value": "no value",
        "planner.lower": "lower than the city",
        "planner.higher": "higher than the city",
        "planner.gap_unavailable": "A count has no gap from the city: showing the values.",
        "planner.sorted_asc": "ascending",
        "planner.sorted_desc": "descending",
        "planner.trend_title": "{ward}: {measure} by week",
        "planner.trend_label": "Weekly {measure} in {ward}",
        "planner.trend_none": "No weeks with a value in this period.",
        "planner.week": "Week of",
        "planner.forbidden_title": "Not for your role",
        "planner.forbidden": "The ward heatmaps are for planners, dispatchers and admins.",
        "measure.reports": "Reports",
        "measure.rate_per_1000": "Reports per 1,000 residents",
        "measure.median_close_h": "Median time to close",
        "measure.p90_close_h": "90th percentile time to close",
        "measure.sla_breach_share": "SLA breach share",
        "measure.backlog": "Backlog (still open)",
        "measure.on_time_score": "On-time score",
        "measure.reopen_share": "Reopen share",
        "unit.reports": "",
        "unit.rate_per_1000": "",
        "unit.median_close_h": "h",
        "unit.p90_close_h": "h",
        "unit.sla_breach_share": "%",
        "unit.backlog": "",
        "unit.on_time_score": "%",
        "unit.reopen_share": "%",
    },
    "es": {
        "skip": "Saltar al contenido principal",
        "pages": "Páginas",
        "language": "Idioma",
        "signed_in_as": "Sesión iniciada como",
        "sign_in": "Acceso del personal",
        "sign_out": "Cerrar sesión",
        "page.report": "Informar de un problema",
        "page.map": "Mapa de avisos",
        "map.title": "Avisos en el mapa",
        "map.intro": "Problemas abiertos y los arreglados en los últimos {days} días. No se "
        "muestran datos personales.",
        "map.label": "Mapa de avisos abiertos y arreglados hace poco",
        "map.loading": "Cargando avisos…",
        "map.shown": "Se muestran {shown} de {total} avisos.",
        "map.failed": "No se pudieron cargar los avisos. Inténtelo más tarde.",
        "map.tiles_failed": "No se pudo cargar el mapa de fondo; se muestra el mapa propio de "
        "la ciudad con distritos y calles.",
        "zoom.in": "Acercar",
        "zoom.out": "Alejar",
        "filter.title": "Filtro y leyenda",
        "filter.category": "Categoría",
        "filter.status": "Estado",
        "state.open": "Abierto",
        "state.fixed": "Arreglado hace poco",
        "popup.reported": "Avisado",
        "popup.reports": "Avisos",
        "popup.tracking": "Número de seguimiento",
        "popup.no_description": "Sin descripción.",
        "status.new": "Recibido",
        "status.triaged": "Revisado",
        "status.assigned": "Asignado a una cuadrilla",
        "status.scheduled": "Programado",
        "status.in_progress": "Trabajo en curso",
        "status.on_hold": "En espera",
        "status.reopened": "Reabierto",
        "status.transferred": "Transferido",
        "status.completed": "Arreglado",
        "status.closed": "Arreglado",
        "status.cancelled": "Cancelado",
        "report.title": "Informar de un problema",
        "report.map_label": "Mapa: toque donde está el problema",
        "report.pin_none": "Toque el mapa donde está el problema, use su ubicación o elija una "
        "foto tomada allí.",
        "report.pin_tap": "Marcador puesto en el mapa. Arrástrelo para ajustarlo.",
        "report.pin_device": "Marcador puesto en la ubicación de su dispositivo. Arrástrelo "
        "para ajustarlo.",
        "report.pin_photo": "Marcador movido a donde se tomó la foto (según su GPS). "
        "Arrástrelo para ajustarlo.",
        "report.photo_no_gps": "Esta foto no lleva ubicación (los teléfonos suelen quitarla). "
        "Toque el mapa o use su ubicación.",
        "report.photo_unreadable": "No se pudo leer la ubicación de la foto. Toque el mapa o "
        "use su ubicación.",
        "report.locate": "Usar mi ubicación",
        "report.locating": "Buscando su ubicación…",
        "report.locate_failed": "Su ubicación no está disponible. Toque el mapa.",
        "report.places_photo_device": "La foto se tomó a {distance} de donde está ahora su "
        "dispositivo.",
        "report.places_pin_photo": "El marcador está a {distance} de donde se tomó la foto.",
        "report.places_pin_device": "El marcador está a {distance} de la ubicación de su "
        "dispositivo.",
        "report.places_which": "¿Qué lugar es el correcto?",
        "report.places_photo_mark": "Donde se tomó la foto",
        "report.places_device_mark": "La ubicación de su dispositivo",
        "report.places_use_photo": "Usar el lugar de la foto",
        "report.places_use_device": "Usar mi ubicación",
        "report.places_keep": "Dejar el marcador donde lo puse",
        "report.ward": "Distrito: {ward}",
        "report.outside": "Este lugar está fuera de la ciudad.",
        "report.ward_unknown": "No se pudo consultar el distrito ahora.",
        "report.need_pin": "Ponga primero un marcador: toque donde está el problema.",
        "report.category": "¿Qué pasa?",
        "report.photo": "Foto (opcional)",
        "report.photo_hint": "Una foto con ubicación pone el marcador por sí sola.",
        "report.preview_alt": "La foto que eligió",
        "report.description": "Detalles (opcional)",
        "report.email": "Correo para novedades (opcional, privado)",
        "report.phone": "Teléfono (opcional, privado)",
        "report.contact_hint": "Solo el personal de la ciudad ve su correo y teléfono.",
        "report.language": "Idioma de las novedades",
        "report.send": "Enviar aviso",
        "report.sending": "Enviando…",
        "report.done": "Gracias. Su número de seguimiento es {tracking_id}.",
        "report.failed": "El aviso no fue aceptado.",
        "report.pin_label": "El lugar del problema (arrastre para ajustar)",
        "report.track_link": "Ver el aviso {tracking_id}",
        "nearby.title": "¿Ya avisado cerca de aquí?",
        "nearby.intro": "Estos problemas abiertos del mismo tipo están cerca de su marcador. "
        "Si uno es el suyo, sígalo: su aviso se suma a él en lugar de abrir uno nuevo.",
        "nearby.distance": "A {metres} m de su marcador",
        "nearby.reports": "Vecinos que lo avisaron: {count}",
        "nearby.photo_alt": "El problema avisado, fotografiado por un vecino",
        "nearby.no_photo": "Sin foto",
        "nearby.follow": "Es mi problema: seguirlo",
        "nearby.email": "Su correo para las novedades",
        "nearby.send": "Enviar mi aviso y seguirlo",
        "nearby.joined": "Su aviso se sumó al aviso {followed}: {email} recibirá sus novedades.",
        "nearby.marker": "Un aviso abierto del mismo tipo",
        "track.title": "Aviso",
        "track.received": "Recibido",
        "track.update": "Novedad",
        "track.day": "Previsto para el {day}.",
        "track.ward": "Distrito",
        "track.residents": "Vecinos que lo avisaron",
        "track.photo": "La foto enviada con el aviso",
        "track.photo_alt": "El problema avisado, fotografiado por el vecino",
        "track.after": "Después del trabajo",
        "track.after_alt": "El lugar después del trabajo, fotografiado por la cuadrilla",
        "track.timeline": "Qué ha pasado",
        "track.follow_other": "Siga en su lugar la solicitud {tracking_id}",
        "track.map_label": "Mapa del lugar del problema",
        "track.open311.open": "abierto",
        "track.open311.closed": "cerrado",
        "follow.title": "Novedades por correo",
        "follow.intro": "Reciba un correo cuando este aviso se programe y cuando se arregle. "
        "Primero enviamos un mensaje para confirmar la dirección.",
        "follow.email": "Su correo electrónico",
        "follow.submit": "Enviarme novedades",
        "follow.sent": "Revise su correo: las novedades empiezan cuando confirme con el enlace "
        "que enviamos.",
        "follow.failed": "No funcionó: {detail}",
        "follow.question": "¿Enviar novedades del aviso {tracking_id} ({category}) a {email}?",
        "follow.confirm": "Sí, enviarme novedades",
        "follow.done": "Listo: {email} recibirá novedades del aviso {tracking_id}.",
        "follow.already": "{email} ya recibe novedades del aviso {tracking_id}.",
        "follow.back": "Volver al aviso {tracking_id}",
        "track.missing_title": "No existe ese aviso",
        "track.missing": "Ningún aviso tiene el número de seguimiento {tracking_id}. Revise el "
        "número del mensaje que recibió al avisar.",
        "page.planner": "Mapas por distrito",
        "planner.title": "Los distritos de un vistazo",
        "planner.map_label": "Mapa de los distritos coloreados según la medida elegida",
        "planner.measure": "Medida",
        "planner.view": "Mostrar",
        "planner.view_value": "El valor del distrito",
        "planner.view_gap": "Diferencia con la ciudad",
        "planner.all": "Todas",
        "planner.group": "Grupo de categorías",
        "planner.from": "Desde",
        "planner.to": "Hasta",
        "planner.hotspots": "Zonas calientes",
        "planner.heat": "Calor de los avisos",
        "planner.heat_legend": "Calor de los avisos: de pocos (azul) a los más de la vista "
        "(rojo); {reports} avisos contados en celdas de {cell_m} m",
        "planner.loading": "Cargando la tabla de distritos…",
        "planner.failed": "No se pudo cargar la tabla de distritos: {detail}",
        "planner.shown": "{wards} distritos, {reports} avisos, del {from} al {to}.",
        "planner.legend": "Leyenda",
        "planner.rates_note": "Las tasas por habitante miden quién decide avisar además de "
        "la necesidad: una tasa baja puede significar vecinos que no avisan, no menos problemas.",
        "planner.export": "Descargar la tabla",
        "planner.wards": "Distritos",
        "planner.ward": "Distrito",
        "planner.gap": "Diferencia con la ciudad",
        "planner.rank": "Puesto",
        "planner.city": "Ciudad",
        "planner.too_few": "Pocos casos",
        "planner.not_ranked": "sin puesto",
        "planner.no_value": "sin valor",
        "planner.lower": "menor que la ciudad",
        "planner.higher": "mayor que la ciudad",
        "planner.gap_unavailable": "Un recuento no tiene diferencia con la ciudad: se muestran "
        "los valores.",
        "planner.sorted_asc": "ascendente",
        "planner.sorted_desc": "descendente",
        "planner.trend_title": "{ward}: {measure} por semana",
        "planner.trend_label": "{measure} semanal en {ward}",
        "planner.trend_none": "Ninguna semana con valor en este periodo.",
        "planner.week": "Semana del",
        "planner.forbidden_title": "No es para su función",
        "planner.forbidden": "Los mapas por distrito son para planificadores, despachadores y "
        "administradores.",
        "measure.reports": "Avisos",
        "measure.rate_per_1000": "Avisos por 1.000 habitantes",
        "measure.median_close_h": "Mediana del tiempo de cierre",
        "measure.p90_close_h": "Percentil 90 del tiempo de cierre",
        "measure.sla_breach_share": "Proporción fuera de plazo (SLA)",
        "measure.backlog": "Pendientes (aún abiertos)",
        "measure.on_time_score": "Puntuación de puntualidad",
        "measure.reopen_share": "Proporción reabierta",
        "unit.reports": "",
        "unit.rate_per_1000": "",
        "unit.median_close_h": "h",
        "unit.p90_close_h": "h",
        "unit.sla_breach_share": "%",
        "unit.backlog": "",
        "unit.on_time_score": "%",
        "unit.reopen_share": "%",
    },
}
LANGUAGES = tuple(MESSAGES)


@dataclass(frozen=True)
class Language:
    """A language the pages speak: its code and its name in itself (from CLDR)."""

    code: str
    name: str


def languages() -> list[Language]:
    """Return the languages the pages offer, each named in itself ("English", "español")."""
    return [Language(c, Locale.parse(c).get_display_name(c) or c) for c in LANGUAGES]


def _accepted(header: str) -> list[str]:
    """Return the tags of an Accept-Language header, most wanted first."""
    weighted = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, i, tag.strip().replace("-", "_")))
    return [tag for _, _, tag in sorted(weighted)]


def choose(*, query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """Return the language code a visitor gets (see the module's docstring)."""
    for asked in (query, cookie):
        if asked is not None and asked in MESSAGES:
            return asked
    if accept_language:
        found = negotiate_locale(_accepted(accept_language), list(LANGUAGES))
        if found is not None:
            return found
    return DEFAULT


def messages(language: str) -> Mapping[str, str]:
    """Return the page words in ``language`` (English for any word not translated)."""
    return {**MESSAGES[DEFAULT], **MESSAGES.get(language, {})}
