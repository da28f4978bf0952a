"""Each home's Home Assistant as the reconnect sensor sees it, as an external asset: one
observation per change (first contact, an outage, its end, a restart, an upgrade, a rejected token
or certificate), so the asset's page is the home's outage and upgrade timeline."""

import dagster as dg

from ...homeassistant.reachability import Decision
from ...names import HOME_ASSISTANT_GROUP
from ..partitions import HOMES

CONNECTION = "home_assistant_connection"

home_assistant_connection = dg.AssetSpec(
    key=CONNECTION,
    group_name=HOME_ASSISTANT_GROUP,
    description="Whether each home's Home Assistant answers, with its version and state, as the reconnect "
    "sensor saw it: observed whenever that changes (not materialized; Dagster does not run anything for it).",
    kinds={"homeassistant"},
    partitions_def=HOMES,
)


def observation(home: str, decision: Decision) -> dg.AssetObservation:
    """What the sensor saw of `home`, for the home's partition of the connection asset."""
    state = decision.state
    return dg.AssetObservation(
        asset_key=CONNECTION,
        partition=home,
        description=decision.explanation,
        metadata={
            "reachable": bool(state.reachable),
            "ha_version": state.version or "",
            "state": state.state or "",
            "problem": decision.problem.value if decision.problem is not None else "",
        },
    )
