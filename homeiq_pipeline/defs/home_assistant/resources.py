"""Every Home Assistant this deployment mirrors, as a Dagster resource."""

from collections.abc import Iterable
from typing import Self

import dagster as dg
from pydantic import Field

from ...homeassistant import DEFAULT_MAX_FRAME_SIZE, DEFAULT_TIMEOUT, HomeAssistantClient
from ...homeassistant.client import MiB
from ...homes import Home, HomeConnection
from ...settings import Settings, current
from ...storage import DEFAULT_INSTANCE
from ..partitions import CONFIGURED_HOMES


class HomeAssistantHome(dg.Config, HomeConnection):
    """One home (a partition), with its token resolved by Dagster at run time."""

    token: str = Field(description="long-lived access token; always from an environment variable", repr=False)


class HomeAssistantResource(dg.ConfigurableResource):
    """Every Home Assistant this deployment mirrors (homes.yaml, or one home from HA_URL/HA_TOKEN),
    reached over its websocket API."""

    homes: list[HomeAssistantHome] = Field(description="one entry per home")
    timeout: float = Field(default=DEFAULT_TIMEOUT, description="seconds to wait for each answer")
    max_frame_mb: float = Field(
        default=DEFAULT_MAX_FRAME_SIZE / MiB, description="largest websocket frame accepted, MiB"
    )

    @property
    def names(self) -> list[str]:
        return [home.name for home in self.homes]

    def home(self, name: str) -> HomeAssistantHome:
        for home in self.homes:
            if home.name == name:
                return home
        raise dg.Failure(f"no home named {name!r} is configured (homes: {', '.join(self.names)})", allow_retries=False)

    @classmethod
    def of(cls, homes: Iterable[Home], settings: Settings) -> Self:
        """The configured homes. Tokens (and a single home's URL) are resolved from the environment
        at run time: the UI shows the variable's name, never its value."""
        return cls(
            homes=[
                HomeAssistantHome(
                    name=home.name,
                    url=home.url or dg.EnvVar("HA_URL"),
                    token=dg.EnvVar(home.token_env),
                    token_env=home.token_env,
                    verify_tls=home.verify_tls,
                    ca_bundle=home.ca_bundle,
                )
                for home in homes
            ],
            timeout=settings.ha_timeout,
            max_frame_mb=settings.ha_max_frame_mb,
        )

    def client(self, name: str, timeout: float | None = None) -> HomeAssistantClient:
        home = self.home(name)
        return home.client(home.token, timeout=timeout or self.timeout, max_frame_size=int(self.max_frame_mb * MiB))


def one_home(url: str, token: str, name: str = DEFAULT_INSTANCE, **options: float) -> HomeAssistantResource:
    """A resource for a single home (tests, scripts)."""
    return HomeAssistantResource(homes=[HomeAssistantHome(name=name, url=url, token=token)], **options)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"home_assistant": HomeAssistantResource.of(CONFIGURED_HOMES, current())})
