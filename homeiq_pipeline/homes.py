"""Which Home Assistants to mirror: one home from HA_URL/HA_TOKEN, or several from a homes.yaml.

    homes:
      - name: home                  # the partition key, and `instance` in every mirrored table
        url: https://ha.local:8123
        token_env: HA_TOKEN         # the NAME of the variable holding the token, never the token
      - name: cabin
        url: https://cabin.example:8123
        token_env: HA_TOKEN_CABIN
        verify_tls: true            # default true
        ca_bundle: /certs/cabin-ca.pem

Tokens stay in the environment: the file names the variable, so it can be committed or mounted
without leaking anything. `resolve_homes` is the one way the CLI, Dagster and the watcher learn
the homes, and `Home` checks every home the same way wherever it comes from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from .homeassistant import HomeAssistantClient, websocket_url
from .settings import DEFAULT_TOKEN_ENV, HOME_NAME, HOME_NAME_RULE, Settings, SettingsError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FIELDS = ("name", "url", "token_env", "verify_tls", "ca_bundle")


class HomesFileError(SettingsError):
    """homes.yaml cannot be used; the message says where and why."""


class HomeConnection(BaseModel):
    """How to reach one Home Assistant; Dagster's resource config has these fields too."""

    name: str = Field(description="the partition key, and `instance` in the mirror's tables")
    url: str | None = Field(default=None, description="http(s)://host:8123 or ws(s)://host:8123/api/websocket")
    verify_tls: StrictBool = Field(default=True, description="verify HA's TLS certificate")
    ca_bundle: str | None = Field(default=None, description="CA file for a self-signed certificate")
    token_env: str = Field(default=DEFAULT_TOKEN_ENV, description="the NAME of the variable holding the token")

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, token_env: str) -> str:
        if not ENV_NAME.match(token_env):
            # Most likely the token itself was pasted here: say so without repeating it.
            raise ValueError("token_env must name an environment variable, not hold a token")
        return token_env

    def client(self, token: str, *, timeout: float, max_frame_size: int) -> HomeAssistantClient:
        """A (not yet connected) client for this home. Raises ValueError for a URL it cannot use."""
        if not self.url:
            raise ValueError(f"home {self.name!r} has no URL")
        return HomeAssistantClient(
            self.url,
            token,
            timeout=timeout,
            verify_tls=self.verify_tls,
            ca_bundle=self.ca_bundle,
            max_frame_size=max_frame_size,
        )


class Home(HomeConnection):
    """A home to mirror, checked: a name that can be a partition, a usable URL (or none yet), and
    the name of the variable that holds its token."""

    model_config = ConfigDict(frozen=True)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not HOME_NAME.match(name):
            raise ValueError(f"name must be {HOME_NAME_RULE}")
        return name

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None:
            websocket_url(url)  # the client's own rule; its ValueError says what it expects
        return url

    def token(self) -> str | None:
        """The token, from its variable, at the moment it is needed (never kept)."""
        return os.environ.get(self.token_env) or None


def resolve_homes(settings: Settings, single: Home | None = None, only: str | None = None) -> list[Home]:
    """Every home to mirror: those of HOMEIQ_HOMES_FILE, else the single home (`single`, or the one
    of HA_URL and HOMEIQ_INSTANCE). `only` picks one home by name. Raises SettingsError."""
    if settings.homes_file is not None:
        homes = load_homes(settings.homes_file.expanduser())
        if only is None:
            return homes
        if only not in (names := [home.name for home in homes]):
            raise SettingsError(f"{settings.homes_file} has no home {only!r} (it has {', '.join(names)}); pass --home")
        return [home for home in homes if home.name == only]
    if single is None:
        single = single_home(settings, name=only)
    return [single]


def single_home(settings: Settings, **overrides: Any) -> Home:
    """The home of HA_URL/HA_TOKEN, named HOMEIQ_INSTANCE; `overrides` (None: not given) are the
    command line's."""
    fields = {
        "name": settings.instance,
        "url": settings.ha_url,
        "verify_tls": settings.ha_verify_tls,
        "ca_bundle": settings.ha_ca_bundle,
    }
    fields.update({key: value for key, value in overrides.items() if value is not None})
    return checked_home(fields, "the home of HOMEIQ_INSTANCE (--instance) and HA_URL (--ha-url): ", SettingsError)


EXPECTED = {"verify_tls": "true or false", "ca_bundle": "a file path"}


def checked_home(fields: dict[str, Any], where: str, error: type[SettingsError] = HomesFileError) -> Home:
    """`Home(**fields)`, or `error` saying where and what is wrong (never quoting a value)."""
    try:
        return Home(**fields)
    except ValidationError as exc:
        problems = [
            str(e["msg"]).removeprefix("Value error, ")
            if e["type"] == "value_error"
            else f"{e['loc'][0]} must be {EXPECTED.get(str(e['loc'][0]), 'a string')}"
            for e in exc.errors(include_input=False)
        ]
        raise error(where + "; ".join(problems)) from None


def load_homes(path: Path) -> list[Home]:
    """Read and validate a homes.yaml."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HomesFileError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # Only where and what: the full error quotes the offending line, which may hold a token.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise HomesFileError(
            f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or 'cannot parse'}"
        ) from None
    entries = document.get("homes") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise HomesFileError(f"{path} must have a non-empty list under `homes:`")
    homes = [_home(entry, f"{path}: homes[{index}]") for index, entry in enumerate(entries)]
    names = [home.name for home in homes]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise HomesFileError(f"{path}: home names must be unique, repeated: {', '.join(duplicates)}")
    return homes


def _home(entry: object, where: str) -> Home:
    if not isinstance(entry, dict):
        raise HomesFileError(f"{where} must be a mapping with name, url and token_env")
    if unknown := sorted(set(entry) - set(FIELDS)):
        raise HomesFileError(f"{where} has unknown fields {unknown}; known: {sorted(FIELDS)}")
    if not isinstance(entry.get("url"), str):
        raise HomesFileError(f"{where} ({entry.get('name')!r}): url must be a Home Assistant URL, http(s)://host:8123")
    return checked_home(entry, f"{where} ({entry.get('name')!r}): ")
