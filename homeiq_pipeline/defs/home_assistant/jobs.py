"""The sync job, and the job that checks freshness on its own."""

import dagster as dg

from ... import settings
from .assets import GROUP
from .checks import mirror_is_fresh

# One sync per home at a time: dagster.yaml limits runs by this tag (one per unique value).
SYNC_TAG = "homeiq/sync"

# The registry assets and everything computed from them (analytics, and the InfluxDB history
# when it is switched on), in order.
SYNC_SELECTION = dg.AssetSelection.groups(GROUP).downstream()
if not settings.history_enabled():
    SYNC_SELECTION = SYNC_SELECTION - dg.AssetSelection.groups("history")

sync_home_assistant = dg.define_asset_job(
    "sync_home_assistant",
    selection=SYNC_SELECTION,
    description="Take one snapshot of Home Assistant, store it in the mirror, and update the analytics.",
    executor_def=dg.in_process_executor,  # one step: a process per step would only add seconds
    tags={SYNC_TAG: settings.instance()},
)

check_mirror_freshness = dg.define_asset_job(
    "check_mirror_freshness",
    selection=dg.AssetSelection.checks(mirror_is_fresh),
    description="Check that the mirror's last sync is recent, without syncing.",
    executor_def=dg.in_process_executor,
)
