"""Each configured home is one partition of every registry, analytics and history asset. A change
to homes.yaml takes effect when the code location is reloaded."""

import dagster as dg

from ..homes import resolve_homes
from ..settings import current

CONFIGURED_HOMES = resolve_homes(current())  # homes.yaml is read once per code location load
HOMES = dg.StaticPartitionsDefinition([home.name for home in CONFIGURED_HOMES])


def homes_in_scope(context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext) -> list[str]:
    """The run's home, or every home when a check runs outside a sync (e.g. the freshness job)."""
    return [context.partition_key] if context.has_partition_key else list(HOMES.get_partition_keys())
