"""Sync when Home Assistant (re)connects. A sensor cannot hold a websocket open between ticks, so
each tick connects briefly, asks `get_config`, and compares with its cursor."""


import os
from datetime import UTC, datetime

import dagster as dg

from ...homeassistant.reachability import ConnectionState, Observation, next_connection_state, observe
from ..resources import HomeAssistantResource
from .jobs import sync_home_assistant

LOOK_TIMEOUT = 10.0  # seconds: a tick must not hang on a silent HA


@dg.sensor(
    name="home_assistant_reconnect",
    job=sync_home_assistant,
    minimum_interval_seconds=int(os.environ.get("HA_SENSOR_INTERVAL_SECONDS") or 30),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a sync on the first contact with Home Assistant, when it comes back after being "
    "unreachable, when it turns RUNNING, and when its version changes.",
)
def home_assistant_reconnect(context: dg.SensorEvaluationContext, home_assistant: HomeAssistantResource):
    now = datetime.now(UTC)
    previous = ConnectionState.from_json(context.cursor)
    if not previous.may_try_token(now):
        return dg.SkipReason(
            f"Home Assistant rejected the token earlier; not trying again before {previous.auth_retry_after} "
            "(fix HA_TOKEN, then reset this sensor's cursor to try at once)"
        )
    seen: Observation = observe(home_assistant.client(timeout=min(home_assistant.timeout, LOOK_TIMEOUT)))
    decision = next_connection_state(previous, seen, now)
    context.update_cursor(decision.state.to_json())
    context.log.info(decision.explanation)
    if decision.sync_reason is None:
        return dg.SkipReason(decision.explanation)
    return dg.RunRequest(
        run_key=decision.sync_key,
        tags={"homeiq/trigger": "reconnect", "homeiq/reason": decision.sync_reason},
    )
