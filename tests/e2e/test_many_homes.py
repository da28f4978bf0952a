"""Several homes in one real Dagster deployment (webserver + daemon) from a homes.yaml: each home is
synced into its own rows by its own runs, different homes run in parallel, a home that comes back
gets a run of its own, and a home with a revoked token blocks nobody."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
import yaml

from ..fake_ha import FakeHomeAssistant
from ..helpers import (
    TOKEN,
    Deployment,
    free_port,
    launched,
    skipped_since,
    sync_runs,
    wait_for,
)

pytestmark = pytest.mark.e2e

TOKENS = {"home": TOKEN, "cabin": "cabin-token-5566778899"}


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("many-homes")
    servers = {name: FakeHomeAssistant(token=token, port=free_port()).start() for name, token in TOKENS.items()}
    # the flat's token is revoked: HA answers auth_invalid
    servers["flat"] = FakeHomeAssistant(token="the-flats-real-token", port=free_port()).start()
    with servers["cabin"].lock:  # a smaller home, to tell the homes' rows apart
        servers["cabin"].results["config/device_registry/list"] = servers["cabin"].results["config/device_registry/list"][:5]
    # The home's first sync waits for its states until the test releases them.
    servers["home"].faults.hold["get_states"] = threading.Event()
    path = tmp / "homes.yaml"
    path.write_text(
        yaml.safe_dump(
            {"homes": [{"name": name, "url": server.url, "token_env": f"TEST_TOKEN_{name.upper()}"} for name, server in servers.items()]}
        ),
        encoding="utf-8",
    )
    env = {"HOMEIQ_HOMES_FILE": str(path), **{f"TEST_TOKEN_{name.upper()}": token for name, token in TOKENS.items()},
           "TEST_TOKEN_FLAT": "a-revoked-token-000"}
    try:
        with launched(tmp, extra_env=env, check=False) as (url, log):  # its broken homes must reach Dagster
            yield SimpleNamespace(url=url, log=log, servers=servers, db_url=f"sqlite:///{tmp / 'mirror.db'}")
    finally:
        for server in servers.values():
            server.stop()


def runs_of(url: str, home: str) -> list[dict]:
    return [run for run in sync_runs(url) if run["tags"].get("dagster/partition") == home]


def succeeded(url: str, home: str, reason: str) -> dict | None:
    return next((r for r in runs_of(url, home) if r["tags"].get("homeiq/reason") == reason and r["status"] == "SUCCESS"), None)


def live_devices(db_url: str) -> dict[str, int]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT instance, count(*) FROM ha_devices WHERE removed_at IS NULL GROUP BY instance")
            ).all()
    finally:
        engine.dispose()
    return dict(rows)


def test_each_home_gets_its_own_first_sync_in_parallel_and_its_own_rows(homes: SimpleNamespace) -> None:
    # The home's run is stuck waiting for HA's answer; the cabin's run is not held back by it.
    cabin = wait_for("the cabin's first sync", lambda: succeeded(homes.url, "cabin", "first contact"), timeout=120)
    (home_run,) = [r for r in runs_of(homes.url, "home") if r["tags"].get("homeiq/reason") == "first contact"]
    assert home_run["status"] in ("STARTING", "STARTED"), home_run
    homes.servers["home"].faults.hold.pop("get_states").set()
    home = wait_for("the home's first sync", lambda: succeeded(homes.url, "home", "first contact"), timeout=120)
    assert (home["tags"]["homeiq/sync"], cabin["tags"]["homeiq/sync"]) == ("home", "cabin")
    assert live_devices(homes.db_url) == {
        "home": len(homes.servers["home"].results["config/device_registry/list"]),
        "cabin": 5,
    }
    # the flat's token is rejected: no run for it, and nothing stored under its name
    assert runs_of(homes.url, "flat") == []
    assert homes.servers["flat"].auth_failures == 1


def test_a_home_that_comes_back_gets_one_run_and_the_others_none(homes: SimpleNamespace) -> None:
    wait_for("both first syncs", lambda: succeeded(homes.url, "home", "first contact") and succeeded(homes.url, "cabin", "first contact"), timeout=120)
    before = {home: len(runs_of(homes.url, home)) for home in ("home", "cabin")}
    cabin = homes.servers["cabin"]
    port, results = cabin.port, cabin.results
    since = time.time()
    cabin.stop()
    deployment = Deployment(homes.url, None, homes.log)
    wait_for("the sensor to see the cabin gone",
             lambda: skipped_since(deployment, since, "cabin: unreachable: cannot reach Home Assistant"), timeout=60)
    homes.servers["cabin"] = FakeHomeAssistant(results, token=TOKENS["cabin"], port=port).start()
    back = wait_for("the cabin's reconnect sync", lambda: succeeded(homes.url, "cabin", "reconnected"), timeout=120)
    assert back["tags"]["homeiq/trigger"] == "reconnect"
    assert len(runs_of(homes.url, "home")) == before["home"]  # the home did not reconnect: no run
    assert len(runs_of(homes.url, "cabin")) == before["cabin"] + 1
