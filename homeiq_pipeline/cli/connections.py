"""How the commands reach each home: the homes (one resolution for all of them), each home's token
from its variable, and the client options of the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..homeassistant import HomeAssistantClient
from ..homeassistant.client import MiB
from ..homes import Home, resolve_homes, single_home
from ..settings import Settings, SettingsError

Connect = Callable[[], HomeAssistantClient]


def the_home(args: argparse.Namespace, settings: Settings, name: str) -> Home:
    """The single home of HA_URL/HA_TOKEN named `name`, with the command line's connection options."""
    insecure = getattr(args, "insecure", None)
    return single_home(
        settings,
        name=name,
        url=getattr(args, "ha_url", None),
        ca_bundle=getattr(args, "ca_bundle", None),
        verify_tls=None if insecure is None else not insecure,
    )


def connections(args: argparse.Namespace, settings: Settings, only: str | None = None) -> dict[str, Connect]:
    """How to connect to each home to watch or run: every home of homes.yaml (or only the one named
    `only`), else the single home named `only` or HOMEIQ_INSTANCE. Raises SettingsError."""
    single = None if settings.homes_file else the_home(args, settings, only or settings.instance)
    return {home.name: connector(args, settings, home) for home in resolve_homes(settings, single, only)}


def connector(args: argparse.Namespace, settings: Settings, home: Home) -> Connect:
    """New connections to `home`. Raises SettingsError naming a missing variable (never its value)
    or a URL that cannot be used."""
    token = home.token()
    if not home.url or not token:
        missing = " and ".join(name for name, value in (("HA_URL", home.url), (home.token_env, token)) if not value)
        if settings.homes_file is None:
            raise SettingsError(
                f"{missing} not set: export HA_URL=http://your-ha:8123 and {home.token_env}=<a long-lived access token>"
            )
        raise SettingsError(
            f"{missing} not set: export it with the access token of home {home.name!r} "
            f"({settings.homes_file} names it as its token_env)"
        )
    timeout = getattr(args, "timeout", settings.ha_timeout)
    max_frame_size = int(getattr(args, "max_frame_mb", settings.ha_max_frame_mb) * MiB)

    def connect() -> HomeAssistantClient:
        return home.client(token, timeout=timeout, max_frame_size=max_frame_size)

    try:
        connect()  # the URL is checked here, once (no connection is made yet)
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    return connect
