"""The analytics and the history steps of one sync share one read of the mirror through the run's
`PictureCache`: the picture is reused only for the same database, instance and sync run, what
history builds from it is the same as from a fresh read, and without a cache nothing is reused."""

import pytest
import sqlalchemy as sa

from homeiq_pipeline import history
from homeiq_pipeline.analytics import PictureCache, compute, latest_picture, refresh_analytics

from .fake_ha import FakeHomeAssistant
from .helpers import sync


def fresh_points(engine: sa.Engine) -> dict[str, list[str]]:
    """History without a cache: everything read and computed again."""
    with engine.connect() as connection:
        return history.latest_sync_points(connection, "home")[1]


def test_history_after_analytics_with_the_same_cache_reuses_their_picture_and_builds_the_same_points(
    fake_ha: FakeHomeAssistant, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync(fake_ha, engine)
    cache = PictureCache()
    refresh_analytics(engine, "home", cache)
    with engine.connect() as connection:
        _, picture = latest_picture(connection, "home", cache)
        assert {"device_inventory", "home_overview"} <= set(cache.computed(picture))
        _, again = latest_picture(connection, "home", cache)
        assert again is picture
        _, unshared = latest_picture(connection, "home")
        assert unshared is not picture and cache.computed(unshared) == {}  # no cache: a read of its own
        with monkeypatch.context() as patched:  # the history step reads no picture of its own
            patched.setattr(compute, "load_mirror", lambda *_: pytest.fail("the picture was read again"))
            _, shared = history.latest_sync_points(connection, "home", cache)
    assert shared == fresh_points(engine)


def test_a_newer_sync_is_read_afresh(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    sync(fake_ha, engine)
    cache = PictureCache()
    refresh_analytics(engine, "home", cache)
    with engine.connect() as connection:
        _, before = latest_picture(connection, "home", cache)
    with fake_ha.lock:
        device = fake_ha.results["config/device_registry/list"][0]
        device["name_by_user"] = "Renamed between syncs"
    sync(fake_ha, engine)
    with engine.connect() as connection:
        _, after = latest_picture(connection, "home", cache)
    assert after is not before
    assert cache.computed(after) == {}  # nothing computed from this picture yet
    assert "Renamed between syncs" in set(after.devices["name_by_user"])
    with engine.connect() as connection:
        _, points = history.latest_sync_points(connection, "home", cache)
    assert any('name="Renamed between syncs"' in line for line in points["ha_device"])


def test_another_instance_is_not_served_from_the_cache(fake_ha: FakeHomeAssistant, engine: sa.Engine) -> None:
    sync(fake_ha, engine)
    sync(fake_ha, engine, instance="cabin")
    cache = PictureCache()
    refresh_analytics(engine, "home", cache)
    with engine.connect() as connection:
        _, home = latest_picture(connection, "home", cache)
        _, cabin = latest_picture(connection, "cabin", cache)
    assert cabin is not home
    assert cache.computed(cabin) == {}  # home's tables are not served as cabin's


def test_a_sync_committed_in_the_middle_of_the_read_is_not_mixed_into_the_picture(
    fake_ha: FakeHomeAssistant, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The analytics read the latest run, then the mirror's tables, in several statements. A sync
    that commits in between must not show: the picture is the run's snapshot, on both databases
    (PostgreSQL's default READ COMMITTED would show it; the read runs in REPEATABLE READ)."""
    first = sync(fake_ha, engine)
    read_mirror = compute.load_mirror

    def a_sync_commits_first(connection: sa.Connection, instance: str) -> compute.Mirror:
        with fake_ha.lock:
            devices = fake_ha.results["config/device_registry/list"]
            devices.append({**devices[0], "id": "added-mid-read"})
        assert sync(fake_ha, engine).run_id != first.run_id  # committed, by another connection
        return read_mirror(connection, instance)

    monkeypatch.setattr(compute, "load_mirror", a_sync_commits_first)
    refreshed = refresh_analytics(engine, "home", PictureCache())
    assert refreshed.sync_run["id"] == first.run_id
    inventory = refreshed.frames["device_inventory"]
    assert "added-mid-read" not in set(inventory["device_id"])
    assert len(inventory) == first.counts["ha_devices"].live


def test_in_one_dagster_run_the_history_step_reuses_the_picture_the_analytics_read(
    fake_ha: FakeHomeAssistant, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's cache lives in the mirror resource, so the history step reads no second picture
    of the mirror (50,000 rows in a large home), and nothing module-wide keeps one."""
    import dagster as dg

    from homeiq_pipeline.defs.analytics.assets import home_analytics
    from homeiq_pipeline.defs.home_assistant.assets import home_assistant_mirror
    from homeiq_pipeline.defs.home_assistant.resources import one_home
    from homeiq_pipeline.defs.influxdb.assets import home_assistant_history
    from homeiq_pipeline.defs.influxdb.resources import InfluxDBResource
    from homeiq_pipeline.defs.resources import MirrorDatabase

    from .helpers import TOKEN

    monkeypatch.setenv("STORE_DEVICE_HISTORY_IN_INFLUXDB", "true")
    written: list[str] = []
    monkeypatch.setattr(InfluxDBResource, "write", lambda self, lines: written.extend(lines) or len(lines))
    reads = []
    read_mirror = compute.load_mirror
    monkeypatch.setattr(compute, "load_mirror", lambda *args: reads.append(args[1]) or read_mirror(*args))
    result = dg.materialize(
        [home_assistant_mirror, home_analytics, home_assistant_history],
        resources={
            "home_assistant": one_home(fake_ha.url, TOKEN),
            "mirror": MirrorDatabase(url=db_url),
            "influxdb": InfluxDBResource(url="http://127.0.0.1:1", token="unused", org="o", bucket="b"),
        },
        partition_key="home",
    )
    assert result.success and any(line.startswith("ha_device,") for line in written)
    assert reads == ["home"]  # one read of the mirror for both steps
