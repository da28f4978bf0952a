"""Sync a home when its Home Assistant (re)connects. A sensor cannot hold a websocket open between
ticks, so each tick connects briefly to every home (in parallel), asks `get_config`, and compares
with what its cursor remembers of that home."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import dagster as dg

from ...homeassistant.reachability import ConnectionState, Decision, next_connection_state, observe
from ...settings import current
from .jobs import sync_home_assistant, sync_request
from .resources import HomeAssistantResource

LOOK_TIMEOUT = 10.0  # seconds: a tick must not hang on a silent HA
PARALLEL_LOOKS = 8  # homes looked at at once, so one silent home does not delay the others


def _remembered(cursor: str | None, homes: list[str]) -> dict[str, ConnectionState]:
    states = json.loads(cursor) if cursor else {}
    if "reachable" in states:  # a cursor from before homes.yaml: it described the one home
        states = {homes[0]: json.dumps(states)}
    return {home: ConnectionState.from_json(states.get(home)) for home in homes}


def _look(home_assistant: HomeAssistantResource, home: str, previous: ConnectionState, now: datetime) -> Decision:
    if not previous.may_try_token(now):
        return Decision(
            previous,
            None,
            f"Home Assistant rejected the token earlier; not trying again before {previous.auth_retry_after} "
            "(fix the token, then reset this sensor's cursor to try at once)",
        )
    seen = observe(home_assistant.client(home, timeout=min(home_assistant.timeout, LOOK_TIMEOUT)))
    return next_connection_state(previous, seen, now)


@dg.sensor(
    name="home_assistant_reconnect",
    job=sync_home_assistant,
    minimum_interval_seconds=current().sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a sync of a home on the first contact with its Home Assistant, when it comes back "
    "after being unreachable, when it turns RUNNING, and when its version changes.",
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
            requests.append(
                sync_request(home, "reconnect", decision.sync_reason, run_key=f"{home}:{decision.sync_key}")
            )
    cursor = json.dumps({home: decision.state.to_json() for home, decision in decisions.items()}, sort_keys=True)
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    return dg.SensorResult(skip_reason="; ".join(f"{h}: {d.explanation}" for h, d in decisions.items()), cursor=cursor)
