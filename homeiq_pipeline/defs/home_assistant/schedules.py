"""Periodic refresh of every home, so changes HA does not announce (or that the sensor missed) still arrive."""

import dagster as dg

from ...settings import current
from .jobs import check_mirror_freshness, sync_home_assistant, sync_request
from .resources import HomeAssistantResource


@dg.schedule(
    name="home_assistant_refresh",
    job=sync_home_assistant,
    cron_schedule=current().refresh_cron,
    execution_timezone=current().timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sync every home periodically (HA_REFRESH_CRON, default hourly; HA_TIMEZONE, default UTC).",
)
def home_assistant_refresh(context: dg.ScheduleEvaluationContext, home_assistant: HomeAssistantResource):
    # run_key: one run per home per tick, even if the tick is evaluated twice.
    for home in home_assistant.names:
        yield sync_request(home, "schedule", "periodic refresh", run_key=home)


mirror_freshness = dg.ScheduleDefinition(
    name="mirror_freshness",
    job=check_mirror_freshness,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Check every 15 minutes that every home's mirror is fresh.",
)
