"""Resources shared by every folder of defs/: the Home Assistant connection and the mirror database."""


from collections.abc import Callable

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from .. import settings, storage
from ..homeassistant import HomeAssistantClient


class HomeAssistantHome(dg.Config):
    """One Home Assistant: a partition of every registry and analytics asset."""

    name: str = Field(description="the partition key, and `instance` in the mirror's tables")
    url: str = Field(description="http(s)://host:8123 or ws(s)://host:8123/api/websocket")
    token: str = Field(description="long-lived access token; always from an environment variable", repr=False)
    verify_tls: bool = Field(default=True, description="verify HA's TLS certificate")
    ca_bundle: str | None = Field(default=None, description="CA file for a self-signed certificate")


class HomeAssistantResource(dg.ConfigurableResource):
    """Every Home Assistant this deployment mirrors (homes.yaml, or one home from HA_URL/HA_TOKEN),
    reached over its websocket API."""

    homes: list[HomeAssistantHome] = Field(description="one entry per home")
    timeout: float = Field(default=30.0, description="seconds to wait for each answer")
    max_frame_mb: float = Field(default=64.0, description="largest websocket frame accepted, MiB")

    @property
    def names(self) -> list[str]:
        return [home.name for home in self.homes]

    def home(self, name: str) -> HomeAssistantHome:
        for home in self.homes:
            if home.name == name:
                return home
        raise dg.Failure(f"no home named {name!r} is configured (homes: {', '.join(self.names)})", allow_retries=False)

    def client(self, name: str, timeout: float | None = None) -> HomeAssistantClient:
        home = self.home(name)
        return HomeAssistantClient(
            home.url,
            home.token,
            timeout=timeout or self.timeout,
            verify_tls=home.verify_tls,
            ca_bundle=home.ca_bundle,
            max_frame_size=int(self.max_frame_mb * 2**20),
        )


def one_home(url: str, token: str, name: str = storage.DEFAULT_INSTANCE, **options: object) -> HomeAssistantResource:
    """A resource for a single home (tests, scripts)."""
    return HomeAssistantResource(homes=[HomeAssistantHome(name=name, url=url, token=token)], **options)


# Each configured home is one partition of the registry, analytics and history assets. A change to
# homes.yaml takes effect when the code location is reloaded.
CONFIGURED_HOMES = settings.homes()  # read (homes.yaml) once per code location load
HOMES = dg.StaticPartitionsDefinition([home.name for home in CONFIGURED_HOMES])


def homes_in_scope(context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext) -> list[str]:
    """The run's home, or every home when a check runs outside a sync (e.g. the freshness job)."""
    return [context.partition_key] if context.has_partition_key else list(HOMES.get_partition_keys())


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
                homes=[
                    HomeAssistantHome(
                        name=home.name,
                        # Tokens (and a single home's URL) are resolved from the environment at
                        # run time: the UI shows the variable's name, never its value.
                        url=home.url or dg.EnvVar("HA_URL"),
                        token=dg.EnvVar(home.token_env),
                        verify_tls=home.verify_tls,
                        ca_bundle=home.ca_bundle,
                    )
                    for home in CONFIGURED_HOMES
                ],
                timeout=settings.ha_timeout(),
                max_frame_mb=settings.ha_max_frame_mb(),
            ),
            "mirror": MirrorDatabase(url=settings.database_url()),
        }
    )


Verdict = tuple[bool, dict[str, object]]  # passed, metadata


def check_each_home(context: dg.AssetCheckExecutionContext, evaluate: Callable[[str], Verdict]) -> dg.AssetCheckResult:
    """Run a check for the run's home (or every home outside a sync); it passes if each home does."""
    verdicts = {home: evaluate(home) for home in homes_in_scope(context)}
    if len(verdicts) == 1:
        ((home, (passed, metadata)),) = verdicts.items()
        return dg.AssetCheckResult(passed=passed, metadata={"home": home, **metadata})
    return dg.AssetCheckResult(
        passed=all(passed for passed, _ in verdicts.values()),
        metadata={
            f"{home}: {name}": value
            for home, (passed, metadata) in verdicts.items()
            for name, value in {"passed": passed, **metadata}.items()
        },
    )
