"""The sync job, and the job that checks freshness on its own."""

import dagster as dg

from ...names import FRESHNESS_JOB, HOME_ASSISTANT_GROUP, REASON_TAG, SYNC_JOB, SYNC_TAG, TRIGGER_TAG
from ..partitions import default_partition_tags
from .checks import mirror_is_fresh


def sync_request(home: str, trigger: str, reason: str, run_key: str | None = None) -> dg.RunRequest:
    """A request to sync one home, tagged with who asked and why (shown in the UI's run list);
    dagster.yaml lets one run per home proceed."""
    return dg.RunRequest(
        run_key=run_key, partition_key=home, tags={SYNC_TAG: home, TRIGGER_TAG: trigger, REASON_TAG: reason}
    )


# The registry assets and everything computed from them: the analytics, and the InfluxDB history
# when it is switched on (switched off, it is not in the code location).
SYNC_SELECTION: dg.AssetSelection = dg.AssetSelection.groups(HOME_ASSISTANT_GROUP).downstream()

sync_home_assistant = dg.define_asset_job(
    SYNC_JOB,
    selection=SYNC_SELECTION,
    description="Take one snapshot of one Home Assistant (the partition), store it in the mirror, and "
    "update its analytics.",
    run_tags=default_partition_tags(),  # one home: a run without a partition syncs it
    executor_def=dg.in_process_executor,  # one step: a process per step would only add seconds
)

check_mirror_freshness = dg.define_asset_job(
    FRESHNESS_JOB,
    selection=dg.AssetSelection.checks(mirror_is_fresh),
    description="Check that the mirror's last sync is recent, without syncing.",
    executor_def=dg.in_process_executor,
)
