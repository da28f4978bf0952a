"""Names that several parts must spell the same way: the code location, its jobs, groups, pools and
run tags. The Dagster definitions (defs/), the launcher and the watcher (which reaches Dagster over
GraphQL, without importing it) all take them from here."""

from typing import Final

# The code location, however it is started: `homeiq-pipeline run` (from a checkout or a wheel),
# workspace.yaml, pyproject.toml's [tool.dagster] and the package's dg.toml all name it this.
LOCATION: Final = "homeiq_pipeline"
DEFINITIONS_MODULE: Final = "homeiq_pipeline.definitions"
REPOSITORY: Final = "__repository__"  # the repository of a Definitions object

SYNC_JOB: Final = "sync_home_assistant"
FRESHNESS_JOB: Final = "check_mirror_freshness"

HOME_ASSISTANT_GROUP: Final = "home_assistant"
ANALYTICS_GROUP: Final = "analytics"
HISTORY_GROUP: Final = "history"
POOL: Final = "home_assistant"  # caps how many homes fetch and write the mirror at once (dagster.yaml)

# Run tags. dagster.yaml lets one run per value of SYNC_TAG (and of PARTITION_TAG, which a launch
# from the UI carries) proceed: one sync per home at a time.
SYNC_TAG: Final = "homeiq/sync"
TRIGGER_TAG: Final = "homeiq/trigger"  # who asked: reconnect, schedule, watch
REASON_TAG: Final = "homeiq/reason"  # why, in a few words
PARTITION_TAG: Final = "dagster/partition"
