"""The analytics and the history steps of one sync share one read of the mirror: the picture is
reused only for the same database, instance and sync run, and what history builds from it is the
same as from a fresh read."""

import sqlalchemy as sa

from homeiq_pipeline import history
from homeiq_pipeline.analytics import computed, latest_picture, refresh_analytics
from homeiq_pipeline.analytics import refresh as refresh_module
from homeiq_pipeline.demo.server import FakeHomeAssistant

from .conftest import sync


def fresh_points(engine: sa.Engine) -> dict[str, list[str]]:
    refresh_module._kept = None  # forget the shared picture: read and compute everything again
    with engine.connect() as connection:
        return history.latest_sync_points(connection, "home")[1]


def test_history_after_analytics_reuses_their_picture_and_builds_the_same_points(
    fake_ha: FakeHomeAssistant, engine: sa.Engine
) -> None:
    sync(fake_ha, engine)
    refresh_analytics(engine, "home")
    with engine.connect() as connection:
        _, picture = latest_picture(connection, "home")
        assert computed(picture, "device_inventory") is not None and computed(picture, "home_overview") is not None
        _, again = latest_picture(connection, "home")
        assert again is picture
        _, shared = history.latest_sync_points(connection, "home")
    assert shared == fresh_points(engine)


def test_a_newer_sync_is_read_afresh(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    sync(fake_ha, engine)
    refresh_analytics(engine, "home")
    with engine.connect() as connection:
        _, before = latest_picture(connection, "home")
    with fake_ha.lock:
        device = fake_ha.results["config/device_registry/list"][0]
        device["name_by_user"] = "Renamed between syncs"
    sync(fake_ha, engine)
    with engine.connect() as connection:
        _, after = latest_picture(connection, "home")
    assert after is not before
    assert computed(after, "device_inventory") is None  # not computed from this picture yet
    assert "Renamed between syncs" in set(after.devices["name_by_user"])
    with engine.connect() as connection:
        _, points = history.latest_sync_points(connection, "home")
    assert any('name="Renamed between syncs"' in line for line in points["ha_device"])


def test_another_instance_is_not_served_from_the_kept_picture(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    sync(fake_ha, engine)
    sync(fake_ha, engine, instance="cabin")
    refresh_analytics(engine, "home")
    with engine.connect() as connection:
        _, home = latest_picture(connection, "home")
        _, cabin = latest_picture(connection, "cabin")
    assert cabin is not home


def test_a_sync_committed_in_the_middle_of_the_read_is_not_mixed_into_the_picture(
    fake_ha: FakeHomeAssistant, engine: sa.Engine, monkeypatch
) -> None:
    """The analytics read the latest run, then the mirror's tables, in several statements. A sync
    that commits in between must not show: the picture is the run's snapshot, on both databases
    (PostgreSQL's default READ COMMITTED would show it; the read runs in REPEATABLE READ)."""
    from homeiq_pipeline.analytics import compute

    first = sync(fake_ha, engine)
    read_mirror = compute.load_mirror

    def a_sync_commits_first(connection: sa.Connection, instance: str) -> compute.Mirror:
        with fake_ha.lock:
            devices = fake_ha.results["config/device_registry/list"]
            devices.append({**devices[0], "id": "added-mid-read"})
        assert sync(fake_ha, engine).run_id != first.run_id  # committed, by another connection
        return read_mirror(connection, instance)

    monkeypatch.setattr(compute, "load_mirror", a_sync_commits_first)
    refresh_module._kept = None
    refreshed = refresh_analytics(engine, "home")
    assert refreshed.sync_run["id"] == first.run_id
    inventory = refreshed.frames["device_inventory"]
    assert "added-mid-read" not in set(inventory["device_id"])
    assert len(inventory) == first.counts["ha_devices"].live
