"""Live mode: hold one websocket to Home Assistant, and request a sync through Dagster shortly
after HA announces a registry change. Knows nothing of Dagster's Python API (it talks to the
webserver's GraphQL endpoint) and nothing of the database."""

from .changes import SUBSCRIPTIONS, Change, PendingSync, describe
from .dagster_runs import DagsterRuns, DagsterUnavailable, LaunchRefused
from .loop import Watcher, WatchSettings

__all__ = [
    "SUBSCRIPTIONS",
    "Change",
    "DagsterRuns",
    "DagsterUnavailable",
    "LaunchRefused",
    "PendingSync",
    "WatchSettings",
    "Watcher",
    "describe",
]
