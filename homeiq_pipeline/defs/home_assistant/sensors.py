"""Sync a home when its Home Assistant (re)connects. A sensor cannot hold a websocket open between
ticks, so each tick connects briefly to every home (in parallel), asks `get_config`, and compares
with what its cursor remembers of that home.

Every tick says what it saw of each home: its skip reason reads "home: reachable, HA 2025.4.4
RUNNING, unchanged" or "home: unreachable: ...". A home that only a person can fix (its token
rejected, its certificate not trusted) fails the tick, red in the UI, until it is fixed.

Dagster keeps the cursor of a failed tick as it was before the tick: a cursor the tick set is
lost. So a tick fails only when it has nothing new to remember; one that does (the first look at
a rejected token, with its pause before the next try) is skipped with the same reason instead,
and the next tick, remembering the same, fails. The token is tried no more often than before.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import dagster as dg

from ...homeassistant.reachability import ConnectionState, Decision, look, observe
from ...settings import current
from .connection import observation
from .jobs import sync_home_assistant, sync_request
from .resources import HomeAssistantResource

LOOK_TIMEOUT = 10.0  # seconds: a tick must not hang on a silent HA
PARALLEL_LOOKS = 8  # homes looked at at once, so one silent home does not delay the others


class HomeNeedsAPerson(Exception):
    """A home cannot be looked at until a person changes a setting (its token, its CA bundle)."""


def _remembered(cursor: str | None, homes: list[str]) -> dict[str, ConnectionState]:
    states = json.loads(cursor) if cursor else {}
    if "reachable" in states:  # a cursor from before homes.yaml: it described the one home
        states = {homes[0]: json.dumps(states)}
    return {home: ConnectionState.from_json(states.get(home)) for home in homes}


def _look(home_assistant: HomeAssistantResource, home: str, previous: ConnectionState, now: datetime) -> Decision:
    timeout = min(home_assistant.timeout, LOOK_TIMEOUT)
    fix_token = f"fix {home_assistant.home(home).token_env}, then reset this sensor's cursor"
    return look(previous, lambda: observe(home_assistant.client(home, timeout=timeout)), now, fix_token)


@dg.sensor(
    name="home_assistant_reconnect",
    job=sync_home_assistant,
    minimum_interval_seconds=current().sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a sync of a home on the first contact with its Home Assistant, when it comes back "
    "after being unreachable, when it turns RUNNING, and when its version changes. Each tick says what it "
    "saw of every home; it fails while a home's token is rejected or its certificate is not trusted.",
)
def home_assistant_reconnect(context: dg.SensorEvaluationContext, home_assistant: HomeAssistantResource):
    now = datetime.now(UTC)
    previous = _remembered(context.cursor, home_assistant.names)
    with ThreadPoolExecutor(max_workers=min(PARALLEL_LOOKS, len(previous))) as pool:
        futures = {home: pool.submit(_look, home_assistant, home, state, now) for home, state in previous.items()}
        decisions = {home: future.result() for home, future in futures.items()}
    requests = []
    for home, decision in decisions.items():
        context.log.info(f"{home}: {decision.explanation}")
        if decision.sync_reason is not None:
            run_key = f"{home}:{decision.sync_key}"
            if previous[home].last_contact is None:
                # A first contact: the cursor is new, or was reset (after a token was fixed). The
                # sensor's last run key tells it from the first contacts before, and stays the
                # same if this tick is evaluated again.
                run_key += f":after:{context.last_run_key or 'none'}"
            requests.append(sync_request(home, "reconnect", decision.sync_reason, run_key=run_key))
    cursor = json.dumps({home: decision.state.to_json() for home, decision in decisions.items()}, sort_keys=True)
    # What changed, on the timeline of each home's connection asset (a look that finds HA as it
    # was leaves its state as it was).
    changes = [observation(home, d) for home, d in decisions.items() if d.state != previous[home]]
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor, asset_events=changes)
    seen = "; ".join(f"{home}: {decision.explanation}" for home, decision in decisions.items())
    needs_a_person = any(d.problem is not None and d.problem.settings_must_change for d in decisions.values())
    if needs_a_person and cursor == context.cursor:
        raise HomeNeedsAPerson(seen)  # nothing new to remember: the cursor Dagster keeps is this one
    return dg.SensorResult(skip_reason=seen, cursor=cursor, asset_events=changes)
