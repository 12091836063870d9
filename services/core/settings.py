"""One settings object for the whole lab.

Every port, URL and knob lives here, read from the environment (prefix ``LAB_``) or a ``.env`` file,
plus ``REDIS_URL``. labkit passes the same environment to every process it starts, so the services, the
notebooks and the tests all agree on where things are without a second source of truth.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: The domain services and the gateway, in the order labkit starts them.
SERVICE_NAMES = ("customer", "policy", "claims", "gateway")

#: Which gateway path prefix belongs to which service: ``/api/policies/...`` -> policy.
ROUTES = {"customers": "customer", "policies": "policy", "claims": "claims"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LAB_", env_file=PROJECT_ROOT / ".env", extra="ignore", frozen=True
    )

    # Redis: REDIS_URL wins; otherwise labkit starts the embedded server on redis_port.
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "LAB_REDIS_URL"))
    redis_port: int = 6390
    redis_maxmemory: str = "256mb"

    # Where services listen and what address they advertise to others.
    host: str = "127.0.0.1"
    advertised_host: str = "127.0.0.1"
    gateway_port: int = 3000
    policy_port: int = 3001
    claims_port: int = 3002
    customer_port: int = 3003

    # labkit's bench: pidfiles, logs, the SQLite files, the Redis state file.
    run_dir: Path = PROJECT_ROOT / ".lab"

    # The system of record is a "slow core insurance system": this many ms are added to every query.
    sor_latency_ms: float = 0.0

    # Timeouts (seconds) for one upstream call from the gateway or between services.
    upstream_timeout_s: float = 5.0
    redis_timeout_s: float = 1.0

    # Biggest request body a service accepts.
    max_body_bytes: int = 64 * 1024

    version: str = "0.1.0"

    def port_of(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def url_of(self, service: str) -> str:
        return f"http://{self.advertised_host}:{self.port_of(service)}"

    @cached_property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    def database_path(self, service: str) -> Path:
        return self.data_dir / f"{service}.sqlite3"


def get_settings() -> Settings:
    """Read the environment now (not at import), so a test or notebook can change it first."""
    return Settings()
