"""Each configured home is one partition of every registry, analytics and history asset. A change
to homes.yaml takes effect when the code location is reloaded."""

import dagster as dg

from ..homes import resolve_homes
from ..names import PARTITION_TAG, SYNC_JOB
from ..settings import current

CONFIGURED_HOMES = resolve_homes(current())  # homes.yaml is read once per code location load
HOMES = dg.StaticPartitionsDefinition([home.name for home in CONFIGURED_HOMES])


def default_partition_tags() -> dict[str, str]:
    """With one home, the tag that makes a run launched without a partition (`dagster job execute`,
    `job.execute_in_process()`) a run of that home; a partition chosen at launch replaces it. With
    several homes, none: such a run must say which home."""
    homes = HOMES.get_partition_keys()
    return {PARTITION_TAG: homes[0]} if len(homes) == 1 else {}


def run_home(context: dg.AssetExecutionContext) -> str:
    """The home a run syncs: its partition. Without one (only possible with several homes, see
    `default_partition_tags`), the run fails with one line that names the homes."""
    if context.has_partition_key:
        return context.partition_key
    homes = HOMES.get_partition_keys()
    raise dg.Failure(
        f"This run names no home, and this deployment mirrors {len(homes)}: {', '.join(homes)}. "
        f"Launch it for one of them (its partition), e.g. `dagster job execute -j {SYNC_JOB} "
        f'--tags \'{{"{PARTITION_TAG}": "{homes[0]}"}}\'`.',
        allow_retries=False,
    )


def homes_in_scope(context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext) -> list[str]:
    """The run's home, or every home when a check runs outside a sync (e.g. the freshness job)."""
    return [context.partition_key] if context.has_partition_key else list(HOMES.get_partition_keys())
