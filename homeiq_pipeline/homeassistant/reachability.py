"""Is Home Assistant there, and did it just come (back)? The decision behind "sync on (re)connect".

A poller (the Dagster sensor) calls `look` now and then with what it remembered last time. A sync
is due on the first contact, when HA comes back after being unreachable, when its state turns
RUNNING, and when its version changes (an upgrade restarted it). A rejected token never leads to a
sync, and is not tried again for a while: repeated failed logins get an address banned by HA.

What is remembered changes only when something changed (a look that finds HA as it was leaves it
as it was), so a poller can tell a look that needs remembering from one that does not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

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
    last_contact: str | None = None  # ISO time of the last look that found HA reachable and changed
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
    explanation: str  # what was seen, in a few words: "reachable, HA 2025.4.4 RUNNING, unchanged"
    sync_key: str | None = None  # identifies the transition, so it never leads to two syncs
    problem: Cause | None = None  # why HA could not be looked at (None: it was)


def look(previous: ConnectionState, observation: Callable[[], Observation], now: datetime, fix_token: str) -> Decision:
    """Look at HA (`observation`) unless its token was rejected and the pause after that has not
    ended yet; say whether a sync is due. `fix_token` tells a person what to do about a rejected token."""
    if not previous.may_try_token(now):
        return Decision(previous, None, _token_rejected(previous, fix_token), problem=Cause.TOKEN_REJECTED)
    return next_connection_state(previous, observation(), now, fix_token)


def next_connection_state(previous: ConnectionState, seen: Observation, now: datetime, fix_token: str) -> Decision:
    """Compare what HA looks like now with what was remembered; say whether a sync is due."""
    if seen.problem is Cause.TOKEN_REJECTED:
        failures = previous.auth_failures + 1
        wait = min(AUTH_BACKOFF_FIRST * 2 ** (failures - 1), AUTH_BACKOFF_MAX)
        state = replace(
            previous, reachable=False, state=None, auth_failures=failures, auth_retry_after=(now + wait).isoformat()
        )
        return Decision(state, None, _token_rejected(state, fix_token), problem=seen.problem)
    if not seen.reachable:
        state = replace(previous, reachable=False, state=None)
        problem = seen.problem or Cause.UNUSABLE_ANSWER
        return Decision(state, None, f"{UNREACHABLE[problem]}: {seen.message}", problem=problem)

    seen_as = f"reachable, HA {seen.version} {seen.state}"
    unchanged = (previous.reachable, previous.state, previous.version) == (True, seen.state, seen.version)
    state = previous if unchanged else ConnectionState(True, seen.state, seen.version, last_contact=now.isoformat())
    if seen.state != RUNNING:
        return Decision(state, None, f"{seen_as}: waiting until it is RUNNING")
    if unchanged:
        return Decision(state, None, f"{seen_as}, unchanged")
    if previous.reachable is None:
        reason = "first contact"
    elif previous.reachable is False:
        reason = "reconnected"
    elif previous.state != RUNNING:
        reason = f"started ({previous.state} -> RUNNING)"
    else:
        reason = f"upgraded ({previous.version} -> {seen.version})"
    # The previous contact identifies this transition, so evaluating it twice asks for one sync.
    key = f"{reason.split(' ')[0]}:{seen.version}:{previous.last_contact or 'never'}"
    return Decision(state, reason, f"{seen_as}, {reason}: sync requested", key)


# How a look that failed is summed up, by its cause (a rejected token has its own sentence).
UNREACHABLE = {
    Cause.UNAVAILABLE: "unreachable",
    Cause.CERTIFICATE_NOT_TRUSTED: "certificate not trusted",
    Cause.UNUSABLE_ANSWER: "unusable answer",
}


def _token_rejected(state: ConnectionState, fix_token: str) -> str:
    if state.auth_retry_after is None:
        return f"token rejected: {fix_token}"
    retry_after = datetime.fromisoformat(state.auth_retry_after).astimezone(UTC)
    return f"token rejected: {fix_token} (not trying again before {retry_after:%Y-%m-%d %H:%M:%S} UTC)"
