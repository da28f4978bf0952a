"""Resources shared by every folder of defs/: the Home Assistant connection and the mirror database."""


import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from .. import settings, storage
from ..homeassistant import HomeAssistantClient


class HomeAssistantResource(dg.ConfigurableResource):
    """One Home Assistant, reached over its websocket API."""

    url: str = Field(description="http(s)://host:8123 or ws(s)://host:8123/api/websocket")
    token: str = Field(description="long-lived access token; always from the environment (HA_TOKEN)", repr=False)
    instance: str = Field(default="home", description="this HA's name in the mirror")
    verify_tls: bool = Field(default=True, description="verify HA's TLS certificate")
    ca_bundle: str | None = Field(default=None, description="CA file for a self-signed certificate")
    timeout: float = Field(default=30.0, description="seconds to wait for each answer")
    max_frame_mb: float = Field(default=64.0, description="largest websocket frame accepted, MiB")

    def client(self, timeout: float | None = None) -> HomeAssistantClient:
        return HomeAssistantClient(
            self.url,
            self.token,
            timeout=timeout or self.timeout,
            verify_tls=self.verify_tls,
            ca_bundle=self.ca_bundle,
            max_frame_size=int(self.max_frame_mb * 2**20),
        )


class MirrorDatabase(dg.ConfigurableResource):
    """The SQL mirror (any SQLAlchemy URL), migrated to the newest schema when first used."""

    url: str = Field(description="SQLAlchemy URL (HOMEIQ_DB_URL)")
    _engine: sa.Engine | None = PrivateAttr(default=None)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = storage.open_database(self.url)
        return self._engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def mirror_kind() -> str:
    """The `kinds` tag of the mirror's database, from its URL."""
    return {"postgresql": "postgres"}.get(sa.make_url(settings.database_url()).get_backend_name(), "sqlite")


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "home_assistant": HomeAssistantResource(
                url=dg.EnvVar("HA_URL"),
                token=dg.EnvVar("HA_TOKEN"),
                instance=settings.instance(),
                verify_tls=settings.ha_verify_tls(),
                ca_bundle=settings.ha_ca_bundle(),
                timeout=settings.ha_timeout(),
                max_frame_mb=settings.ha_max_frame_mb(),
            ),
            "mirror": MirrorDatabase(url=settings.database_url()),
        }
    )
