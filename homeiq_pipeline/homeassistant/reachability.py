"""Is Home Assistant there, and did it just come (back)? The decision behind "sync on (re)connect".

A poller (the Dagster sensor) calls `observe` now and then and feeds the result to
`next_connection_state` with what it remembered last time. A sync is due on the first contact,
when HA comes back after being unreachable, when its state turns RUNNING, and when its version
changes (an upgrade restarted it). A rejected token never leads to a sync, and is not tried again
for a while: repeated failed logins get an address banned by HA.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

from .client import HomeAssistantClient
from .errors import Cause, HomeAssistantError

RUNNING = "RUNNING"
AUTH_BACKOFF_FIRST = timedelta(minutes=5)
AUTH_BACKOFF_MAX = timedelta(hours=1)


@dataclass(frozen=True)
class Observation:
    """One look at HA: its state and version, or why it could not be had."""

    reachable: bool
    state: str | None = None
    version: str | None = None
    problem: Cause | None = None
    message: str | None = None


def observe(client: HomeAssistantClient) -> Observation:
    """Connect, ask `get_config`, disconnect. Never raises for HA's failures."""
    try:
        with client:
            config = client.command("get_config")
    except HomeAssistantError as exc:
        return Observation(False, problem=exc.cause, message=str(exc))
    if not isinstance(config, dict):
        return Observation(False, problem=Cause.UNUSABLE_ANSWER, message="get_config did not return an object")
    return Observation(True, state=config.get("state"), version=config.get("version"))


@dataclass(frozen=True)
class ConnectionState:
    """What the poller remembers between looks (kept as JSON, e.g. in a sensor cursor)."""

    reachable: bool | None = None  # None: never looked
    state: str | None = None
    version: str | None = None
    last_contact: str | None = None  # ISO time of the last successful look
    auth_failures: int = 0
    auth_retry_after: str | None = None  # ISO time before which the token is not tried again

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ConnectionState:
        if not text:
            return cls()
        known = {name: value for name, value in json.loads(text).items() if name in cls.__dataclass_fields__}
        return cls(**known)

    def may_try_token(self, now: datetime) -> bool:
        return self.auth_retry_after is None or now >= datetime.fromisoformat(self.auth_retry_after)


@dataclass(frozen=True)
class Decision:
    state: ConnectionState
    sync_reason: str | None  # None: no sync
    explanation: str
    sync_key: str | None = None  # identifies the transition, so it never leads to two syncs


def next_connection_state(previous: ConnectionState, seen: Observation, now: datetime) -> Decision:
    """Compare what HA looks like now with what was remembered; say whether a sync is due."""
    if seen.problem is Cause.TOKEN_REJECTED:
        failures = previous.auth_failures + 1
        wait = min(AUTH_BACKOFF_FIRST * 2 ** (failures - 1), AUTH_BACKOFF_MAX)
        state = replace(
            previous, reachable=False, state=None, auth_failures=failures, auth_retry_after=(now + wait).isoformat()
        )
        return Decision(state, None, f"{seen.message}; not trying the token again before {state.auth_retry_after}")
    if not seen.reachable:
        state = replace(previous, reachable=False, state=None)
        return Decision(state, None, f"Home Assistant is unreachable: {seen.message}")

    state = ConnectionState(reachable=True, state=seen.state, version=seen.version, last_contact=now.isoformat())
    if seen.state != RUNNING:
        return Decision(state, None, f"Home Assistant {seen.version} is {seen.state}: waiting until it is RUNNING")
    if previous.reachable is None:
        reason = "first contact"
    elif previous.reachable is False:
        reason = "reconnected"
    elif previous.state != RUNNING:
        reason = f"started ({previous.state} -> RUNNING)"
    elif previous.version != seen.version:
        reason = f"upgraded ({previous.version} -> {seen.version})"
    else:
        return Decision(state, None, f"Home Assistant {seen.version} is RUNNING, unchanged since the last look")
    # The previous contact identifies this transition, so evaluating it twice asks for one sync.
    key = f"{reason.split(' ')[0]}:{seen.version}:{previous.last_contact or 'never'}"
    return Decision(state, reason, f"Home Assistant {seen.version} {reason}: sync requested", key)
