"""Settings: one pydantic-settings class, env prefix ``GEO311_``, nested groups.

Nested values are set with a double underscore, e.g. ``GEO311_MEDIA__MAX_BYTES=20000000``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("geo311", appauthor=False))


class DatabaseSettings(BaseModel):
    """Where the data lives: a server URL, or an embedded cluster the app starts itself."""

    url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of a PostGIS database. Unset: start the embedded cluster.",
    )
    cluster_dir: Path | None = Field(
        default=None,
        description=(
            "PGDATA of the embedded cluster. Default: <data_dir>/pg, or /var/lib/geo311/pg "
            "when running as root (PostgreSQL cannot run as root and cannot reach /root)."
        ),
    )
    name: str = "geo311"
    # As many pooled connections as the web server's worker threads (40), so a busy minute
    # does not open and close sessions; the embedded cluster allows 200.
    pool_size: int = 40
    max_overflow: int = 10
    health_timeout_s: float = Field(
        default=2.0, gt=0, description="/healthz and /readyz: longest wait for the database"
    )


class MediaSettings(BaseModel):
    """Photo limits and where the files go."""

    root: Path | None = Field(default=None, description="Default: <data_dir>/media")
    max_bytes: int = Field(default=15_000_000, description="Largest accepted upload, bytes")
    # Phones write 12-24 MP by default (binned from 48-200 MP sensors) and up to 8192x6144
    # (50.3 MP, Sony IMX766) in full-resolution modes; 108/200 MP modes give JPEGs past max_bytes.
    # 52 MP admits every phone photo the byte cap admits, with a little room.
    max_pixels: int = Field(
        default=52_000_000, gt=0, description="Largest accepted image, pixels (phones: <= 50.3 MP)"
    )
    public_max_px: int = Field(default=2048, description="Long edge of the public copy, pixels")
    thumb_max_px: int = Field(default=320, description="Long edge of the thumbnail, pixels")
    jpeg_quality: int = 85
    decode_memory_mb: int = Field(
        default=512,
        gt=0,
        description=(
            "Pixel memory all photo decodes may hold at once, MB; an upload waits for room, "
            "one that alone needs more is refused (413)"
        ),
    )
    max_concurrent_decodes: int | None = Field(
        default=None, gt=0, description="Photo decodes at once. Default: the CPU count"
    )
    decode_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="Longest wait for decode room before 503 with Retry-After, seconds",
    )


class IntakeSettings(BaseModel):
    """Limits on what a resident can send."""

    description_max_chars: int = 4000
    default_snap_radius_m: float = 30.0


class Open311Settings(BaseModel):
    """The Open311 GeoReport v2 API: what discovery tells clients, and how much one call returns."""

    contact: str = Field(
        default="Write to the city's 311 team.",
        description="Discovery's contact line: who answers questions about this API",
    )
    key_service: str = Field(
        default="Ask the city's 311 team for an API key (issued with `geo311 apikey create`).",
        description="Discovery's key_service line: how an application gets an API key",
    )
    max_span_days: int = Field(
        default=90, description="Longest date span of one query, and the default window, days"
    )
    page_size_default: int = Field(default=1000, description="Requests per page when not asked")
    page_size_max: int = Field(default=1000, description="Largest page_size a client may ask")


class SmtpSettings(BaseModel):
    """The mail server notices go out through."""

    host: str = Field(default="127.0.0.1", description="SMTP server host")
    port: int = Field(default=1025, description="SMTP port (1025: the dev mail catcher)")
    starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS")
    ssl: bool = Field(default=False, description="Implicit TLS from the first byte (port 465)")
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=20.0, description="Socket timeout per SMTP step, seconds")
    from_address: str = Field(
        default="geo311 <no-reply@geo311.localhost>", description="From: of every notice"
    )


class SmsSettings(BaseModel):
    """The SMS provider (one HTTP adapter: a Twilio-style Messages API)."""

    provider: Literal["none", "twilio"] = Field(
        default="none", description="'none' marks SMS notices skipped; 'twilio' sends them"
    )
    base_url: str = "https://api.twilio.com"
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_number: str | None = None
    timeout_s: float = 10.0


class DevMailSettings(BaseModel):
    """A mail catcher for development: a local SMTP server whose mails /dev/mail lists."""

    enabled: bool | None = Field(
        default=None,
        description="Run it with `geo311 run`. Default: on with the embedded database only",
    )
    host: str = "127.0.0.1"
    port: int = 1025


class NotifySettings(BaseModel):
    """Notices to residents (email, SMS) and to webhooks, and the worker that sends them."""

    link_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Key that signs the links in notices. Default: a random key kept in "
            "<data_dir>/notify-link-secret"
        ),
    )
    link_ttl_days: int = Field(default=60, description="How long a 'fixed?' link stays valid")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    sms: SmsSettings = Field(default_factory=SmsSettings)
    dev_mail: DevMailSettings = Field(default_factory=DevMailSettings)
    webhook_timeout_s: float = 10.0
    webhook_allow_private: bool = Field(
        default=False,
        description=(
            "Let webhooks point at loopback, link-local or private addresses (off: refused "
            "when registered and when sent)"
        ),
    )
    worker_concurrency: int = Field(default=4, description="Jobs one worker runs at once")
    embedded_worker: bool = Field(
        default=True, description="`geo311 run` also runs a worker in-process"
    )
    max_attempts: int = Field(default=12, description="Tries per notice before it fails")
    retry_base_s: float = Field(default=30.0, description="First retry delay; doubles each try")
    retry_max_s: float = Field(default=3600.0, description="Longest delay between tries")
    claim_lease_s: float = Field(
        default=300.0,
        description="A notice handed to a channel this long ago with no answer is 'uncertain'",
    )
    resend_uncertain: bool = Field(
        default=False,
        description=(
            "Resend 'uncertain' email/SMS (at-least-once) instead of holding them (at-most-once)"
        ),
    )
    orphan_grace_s: float = Field(
        default=600.0, description="Owed notices overdue this long get a fresh job"
    )
    poll_interval_s: float = Field(
        default=5.0, description="Worker's fallback poll; LISTEN/NOTIFY wakes it at once"
    )
    heartbeat_interval_s: float = 10.0
    stalled_worker_s: float = Field(
        default=30.0,
        description=(
            "A worker silent this long is dead: its jobs are retried and /healthz says unhealthy"
        ),
    )
    reconnect_max_wait_s: float = Field(
        default=30.0, gt=0, description="Longest wait between a worker's tries to reconnect"
    )
    worker_give_up_s: float | None = Field(
        default=600.0,
        description=(
            "`geo311 worker` exits with status 1 when the database has been unreachable this "
            "long (unset: never). The in-process worker of `geo311 run` never gives up"
        ),
    )


class DedupWeights(BaseModel):
    """How much each signal adds to (or takes from) a candidate's score; see
    geo311.resident.dedup."""

    model_config = ConfigDict(extra="forbid")

    within_radius: float = Field(default=1.0, description="The candidate is within the radius")
    closeness: float = Field(
        default=0.5, description="Times (1 - distance/radius): more the nearer it is"
    )
    same_asset: float = Field(default=2.0, description="Both snapped to the same asset")
    other_asset: float = Field(
        default=-1.5, description="Both snapped, to different assets of a type"
    )
    photo_similar: float = Field(default=1.0, description="Photos nearly the same (pHash)")
    photo_different: float = Field(default=-0.25, description="Photos clearly different")
    same_address: float = Field(default=1.0, description="Same normalised address text")
    other_address: float = Field(default=-0.5, description="Both gave an address; they differ")
    other_category: float = Field(default=-0.5, description="Another category of the same group")
    age: float = Field(
        default=-0.5,
        description="Reached as the candidate's quiet time grows: times 1 - 2^(-age/half-life)",
    )


class DedupSettings(BaseModel):
    """Duplicate detection defaults; a category may override each (service_categories.dedup_*).

    The radius is the category's ``dedup_radius_m``. A candidate is an incident of the same
    category group within that radius (inclusive) or on the same snapped asset, open with a
    report in the last ``open_window_h``, or closed within the last ``reopen_window_h``.
    """

    enabled: bool = Field(default=True, description="Off: every report opens its own incident")
    threshold: float = Field(default=0.75, description="Lowest score that counts as a match")
    open_window_h: float = Field(
        default=90 * 24, gt=0, description="An open incident quiet longer than this is not matched"
    )
    reopen_window_h: float = Field(
        default=14 * 24, ge=0, description="A report this soon after closing reopens the incident"
    )
    age_half_life_h: float = Field(
        default=7 * 24, gt=0, description="Quiet time at which half of the age penalty applies"
    )
    photo_similar_bits: int = Field(
        default=10, ge=0, le=64, description="pHash Hamming distance at or below: similar"
    )
    photo_different_bits: int = Field(
        default=24, ge=0, le=64, description="pHash Hamming distance at or above: different"
    )
    lock_cell_m: float = Field(
        default=250.0,
        gt=0,
        description="Side of the grid cells that concurrent intake locks (metres, roughly)",
    )
    weights: DedupWeights = Field(default_factory=DedupWeights)


class RoutingSettings(BaseModel):
    """Travel times and the route solver."""

    speed_kmh: float = Field(
        default=25.0, gt=0, description="Straight-line travel: average speed along the way"
    )
    detour_factor: float = Field(
        default=1.3, ge=1.0, description="Straight-line travel: road distance ÷ geodesic distance"
    )
    road_speeds_kmh: dict[str, float] = Field(
        default_factory=dict,
        description="Road network: speed per OSM highway class, over the built-in defaults",
    )
    engine: Literal["auto", "pyvrp", "vroom"] = Field(
        default="auto",
        description="Route solver: PyVRP, VROOM, or auto (VROOM when crews have breaks)",
    )
    time_limit_s: float = Field(default=5.0, gt=0, description="Search time per daily plan")
    threads: int = Field(default=2, ge=1, description="Threads the solver may use (VROOM)")
    seed: int = 0
    no_improvement: int | None = Field(
        default=None,
        ge=1,
        description="PyVRP: stop a plan's search after this many iterations in a row find "
        "nothing better (none: search for the whole time limit)",
    )
    default_service_s: int = Field(
        default=1800, ge=0, description="Time on site for a category with no service time set"
    )
    replan_time_limit_s: float = Field(
        default=1.0, gt=0, description="Search time when a dispatcher's move re-plans crews"
    )
    horizon_days: int = Field(
        default=7,
        ge=0,
        description="A day's plan takes open work due within this many days after it",
    )
    lock_slack_s: int = Field(
        default=900,
        ge=0,
        description="How much earlier or later a locked stop may start when re-planned",
    )


class SigninSettings(BaseModel):
    """Staff sign-in for pages: passwords, sessions, and how repeated failures are slowed."""

    session_idle_timeout_s: int = Field(
        default=2 * 3600, gt=0, description="A session unused this long ends (seconds)"
    )
    session_max_age_s: int = Field(
        default=12 * 3600, gt=0, description="A session ends this long after sign-in, used or not"
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="Mark the session cookie Secure. Default: when the public base URL is https",
    )
    password_min_chars: int = Field(default=12, ge=8, description="Shortest password accepted")
    # argon2id cost; the defaults are argon2-cffi's (RFC 9106's low-memory choice). Raising them
    # rehashes each password at its user's next sign-in.
    argon2_time_cost: int = Field(default=3, ge=1, description="argon2id passes")
    argon2_memory_kib: int = Field(default=65536, ge=8, description="argon2id memory, KiB")
    argon2_parallelism: int = Field(default=4, ge=1, description="argon2id lanes")
    throttle_window_s: int = Field(
        default=900, gt=0, description="Failed sign-ins count within this window of the last one"
    )
    throttle_account_free: int = Field(
        default=5, ge=1, description="Failures of one account before each try waits"
    )
    throttle_address_free: int = Field(
        default=20, ge=1, description="Failures from one client address before each try waits"
    )
    throttle_base_delay_s: float = Field(
        default=1.0, gt=0, description="First wait once the free failures are used; doubles"
    )
    throttle_max_delay_s: float = Field(
        default=300.0, gt=0, description="Longest wait between tries (nobody is locked out)"
    )


class MapsSettings(BaseModel):
    """The map pages: the tile layer under them, and how much their JSON endpoints return."""

    tile_url: str = Field(
        default="",
        description=(
            "Tile URL template, e.g. https://tiles.example.org/{z}/{x}/{y}.png. Empty: no tiles; "
            "the pages draw geo311's own basemap (wards and streets) either way"
        ),
    )
    tile_attribution: str = Field(
        default="", description="Attribution shown for the tiles (HTML is escaped)"
    )
    tile_max_zoom: int = Field(default=19, ge=1, le=24, description="Deepest zoom of the tiles")
    recent_fixed_days: int = Field(
        default=30, ge=0, description="/map shows fixed reports closed within this many days"
    )
    max_markers: int = Field(
        default=5000, ge=1, description="Most incidents one /api/v1/map/incidents call returns"
    )
    basemap_max_streets: int = Field(
        default=20000, ge=1, description="Most street lines one /api/v1/basemap call returns"
    )
    live_ping_s: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="/api/v1/live sends a keep-alive comment after this many quiet seconds",
    )
    live_max_s: float = Field(
        default=900.0,
        gt=0,
        le=86400,
        description="/api/v1/live ends a stream after this long; the browser reconnects",
    )


class AnalyticsSettings(BaseModel):
    """The planner's analytics (maps.analytics): comparison rules and hotspot parameters."""

    min_cases: int = Field(
        default=10, ge=1, description="A ward with fewer incidents is 'too few to compare'"
    )
    max_period_days: int = Field(default=731, ge=1, description="Longest period one query spans")
    cluster_radius_factor: float = Field(
        default=2.0, gt=0, description="Hotspot clusters: DBSCAN distance = this × dedup radius"
    )
    cluster_min_reports: int = Field(
        default=5, ge=2, description="Hotspot clusters: reports within the distance to form one"
    )
    hex_size_m: float = Field(default=250.0, gt=0, description="Hexagon cells: edge, metres")
    max_hex_cells: int = Field(
        default=15_000, ge=1, description="Most hexagon cells one query may lay over the city"
    )
    gi_permutations: int = Field(
        default=999, ge=99, description="Getis-Ord Gi*: permutations for the pseudo p-value"
    )
    gi_seed: int = Field(default=12345, description="Gi* permutation seed (same data, same p)")
    gi_alpha: float = Field(default=0.05, gt=0, lt=1, description="Gi*: significance level")
    repeat_radius_m: float = Field(
        default=10.0, gt=0, description="Repeat locations: 'the same spot' within this distance"
    )
    refresh_cron: str = Field(
        default="*/5 * * * *",
        description="The worker takes pending changes into the planner's summary tables on "
        "this schedule (cron; a sixth field counts seconds; empty: never)",
    )


class Settings(BaseSettings):
    """Every setting of geo311, read from ``GEO311_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="GEO311_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    jurisdiction: str = Field(
        default="demo", description="Slug of the jurisdiction the API serves by default"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    access_log: bool = Field(
        default=True, description="Log every HTTP request (off for benchmarks)"
    )
    public_base_url: str | None = Field(
        default=None, description="Base URL used in links (photo URLs). Default: http://host:port"
    )
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    open311: Open311Settings = Field(default_factory=Open311Settings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    signin: SigninSettings = Field(default_factory=SigninSettings)
    maps: MapsSettings = Field(default_factory=MapsSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)

    @property
    def media_root(self) -> Path:
        return self.media.root or self.data_dir / "media"

    @property
    def cluster_dir(self) -> Path:
        if self.db.cluster_dir is not None:
            return self.db.cluster_dir
        if os.geteuid() == 0:
            return Path("/var/lib/geo311/pg")
        return self.data_dir / "pg"

    @property
    def dev_mail_enabled(self) -> bool:
        """Whether `geo311 run` starts the dev mail catcher (default: embedded database only)."""
        if self.notify.dev_mail.enabled is not None:
            return self.notify.dev_mail.enabled
        return self.db.url is None

    @property
    def base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def session_cookie_secure(self) -> bool:
        """Whether the sign-in cookies carry Secure (default: served over https)."""
        if self.signin.cookie_secure is not None:
            return self.signin.cookie_secure
        return self.base_url.lower().startswith("https://")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
