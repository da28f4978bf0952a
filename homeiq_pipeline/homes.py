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
without leaking anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_TOKEN_ENV = "HA_TOKEN"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")  # a partition key, a run tag value, a column value
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FIELDS = {"name", "url", "token_env", "verify_tls", "ca_bundle"}


class HomesFileError(ValueError):
    """homes.yaml cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Home:
    name: str
    url: str | None  # None: not configured (HA_URL unset); a sync says so
    token_env: str = DEFAULT_TOKEN_ENV
    verify_tls: bool = True
    ca_bundle: str | None = None


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
        raise HomesFileError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or 'cannot parse'}") from None
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
    if unknown := sorted(set(entry) - FIELDS):
        raise HomesFileError(f"{where} has unknown fields {unknown}; known: {sorted(FIELDS)}")
    name, url, token_env = entry.get("name"), entry.get("url"), entry.get("token_env", DEFAULT_TOKEN_ENV)
    if not isinstance(name, str) or not NAME.match(name):
        raise HomesFileError(f"{where}: name must be lowercase letters, digits, '-' or '_' (got {name!r})")
    if not isinstance(url, str) or not re.match(r"^(https?|wss?)://", url):
        raise HomesFileError(f"{where} ({name}): url must start with http://, https://, ws:// or wss://")
    if not isinstance(token_env, str) or not ENV_NAME.match(token_env):
        # Most likely the token itself was pasted here: say so without repeating it.
        raise HomesFileError(f"{where} ({name}): token_env must name an environment variable, not hold a token")
    verify_tls = entry.get("verify_tls", True)
    if not isinstance(verify_tls, bool):
        raise HomesFileError(f"{where} ({name}): verify_tls must be true or false")
    ca_bundle = entry.get("ca_bundle")
    if ca_bundle is not None and not isinstance(ca_bundle, str):
        raise HomesFileError(f"{where} ({name}): ca_bundle must be a file path")
    return Home(name, url, token_env, verify_tls, ca_bundle)
