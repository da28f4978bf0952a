"""Periodic refresh, so changes HA does not announce (or that the sensor missed) still arrive."""

import os

import dagster as dg

from .jobs import check_mirror_freshness, sync_home_assistant

home_assistant_refresh = dg.ScheduleDefinition(
    name="home_assistant_refresh",
    job=sync_home_assistant,
    cron_schedule=os.environ.get("HA_REFRESH_CRON") or "0 * * * *",
    execution_timezone=os.environ.get("HA_TIMEZONE") or "UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sync Home Assistant periodically (HA_REFRESH_CRON, default hourly; HA_TIMEZONE, default UTC).",
)

mirror_freshness = dg.ScheduleDefinition(
    name="mirror_freshness",
    job=check_mirror_freshness,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Check every 15 minutes that the mirror is fresh.",
)
