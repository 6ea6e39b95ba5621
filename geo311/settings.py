"""Settings: one pydantic-settings class, env prefix ``GEO311_``, nested groups.

Nested values are set with a double underscore, e.g. ``GEO311_MEDIA__MAX_BYTES=20000000``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, Field, SecretStr
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
    pool_size: int = 10
    max_overflow: int = 30


class MediaSettings(BaseModel):
    """Photo limits and where the files go."""

    root: Path | None = Field(default=None, description="Default: <data_dir>/media")
    max_bytes: int = Field(default=15_000_000, description="Largest accepted upload, bytes")
    max_pixels: int = Field(default=50_000_000, description="Largest accepted image, pixels")
    public_max_px: int = Field(default=2048, description="Long edge of the public copy, pixels")
    thumb_max_px: int = Field(default=320, description="Long edge of the thumbnail, pixels")
    jpeg_quality: int = 85


class IntakeSettings(BaseModel):
    """Limits on what a resident can send."""

    description_max_chars: int = 4000
    default_snap_radius_m: float = 30.0


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
    time_limit_s: float = Field(default=10.0, gt=0, description="Search time per daily plan")
    threads: int = Field(default=2, ge=1, description="Threads the solver may use (VROOM)")
    seed: int = 0
    default_service_s: int = Field(
        default=1800, ge=0, description="Time on site for a category with no service time set"
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
    public_base_url: str | None = Field(
        default=None, description="Base URL used in links (photo URLs). Default: http://host:port"
    )
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)

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
    def base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
