"""The sync job, and the job that checks freshness on its own."""

import dagster as dg

from ... import settings
from .assets import GROUP
from .checks import mirror_is_fresh

# One sync per home at a time: dagster.yaml allows one run per unique value of this tag (and of
# dagster/partition, which a launch from the UI carries).
SYNC_TAG = "homeiq/sync"


def sync_request(home: str, trigger: str, reason: str, run_key: str | None = None) -> dg.RunRequest:
    """A request to sync one home, tagged with who asked and why (shown in the UI's run list)."""
    return dg.RunRequest(
        run_key=run_key,
        partition_key=home,
        tags={SYNC_TAG: home, "homeiq/trigger": trigger, "homeiq/reason": reason},
    )

# The registry assets and everything computed from them (analytics, and the InfluxDB history
# when it is switched on), in order.
SYNC_SELECTION = dg.AssetSelection.groups(GROUP).downstream()
if not settings.history_enabled():
    SYNC_SELECTION = SYNC_SELECTION - dg.AssetSelection.groups("history")

sync_home_assistant = dg.define_asset_job(
    "sync_home_assistant",
    selection=SYNC_SELECTION,
    description="Take one snapshot of one Home Assistant (the partition), store it in the mirror, and "
    "update its analytics.",
    executor_def=dg.in_process_executor,  # one step: a process per step would only add seconds
)

check_mirror_freshness = dg.define_asset_job(
    "check_mirror_freshness",
    selection=dg.AssetSelection.checks(mirror_is_fresh),
    description="Check that the mirror's last sync is recent, without syncing.",
    executor_def=dg.in_process_executor,
)
