"""The image and the compose file's demo profile, run for real with podman: the webserver answers,
every container is healthy, the reconnect sensor launched a sync that succeeded, the mirror file in
the volume holds the demo home, containers stop within seconds, and a recreated stack keeps its data.

The tests share one stack and run in this order.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline.demo.server import DEMO_LOCATION_NAME, load_recording
from homeiq_pipeline.storage.queries import recent_sync_runs

from ..helpers import wait_for
from ..mirror_checks import assert_mirror_equals_ha
from .conftest import TIMINGS, Stack, run, timed

pytestmark = pytest.mark.container

MIRROR = "/var/lib/homeiq/mirror/demo.db"  # docker/demo.env's HOMEIQ_DB_URL
SERVICES = {"dagster-webserver", "dagster-daemon", "demo-ha", "watcher"}


def test_the_image_runs_as_a_non_root_user_with_a_health_check(tools: dict[str, str], image: str) -> None:
    (config,) = json.loads(run([tools["podman"], "image", "inspect", image]).stdout)
    assert config["Config"]["User"] == "homeiq:homeiq"
    healthcheck = config.get("Healthcheck") or config["Config"].get("Healthcheck")  # podman / docker
    assert healthcheck["Test"][0] == "CMD-SHELL"
    assert config["Config"]["Entrypoint"][0] == "dumb-init"  # PID 1 forwards SIGTERM
    assert set(config["Config"]["Volumes"]) == {"/var/lib/homeiq/dagster", "/var/lib/homeiq/mirror"}


def test_the_stack_runs_the_webserver_the_daemon_and_the_demo(stack: Stack) -> None:
    containers = stack.containers()
    assert set(containers) == SERVICES
    for container in containers.values():
        assert run([stack.podman, "exec", container, "id", "-u"]).stdout.strip() == "10001"
    ports = run([stack.podman, "port", containers["dagster-webserver"]]).stdout
    assert ports.strip() == f"3000/tcp -> 127.0.0.1:{stack.url.rsplit(':', 1)[1]}"  # loopback only
    assert run([stack.podman, "port", containers["demo-ha"]]).stdout.strip() == ""  # not published


def test_every_container_is_healthy(stack: Stack) -> None:
    # podman runs health checks only when asked (its timers need systemd).
    def healthy(container: str) -> bool:
        check = subprocess.run([stack.podman, "healthcheck", "run", container], check=False, capture_output=True, text=True)
        return check.returncode == 0

    for service, container in stack.containers().items():
        wait_for(f"the health check of {service}", lambda c=container: healthy(c), timeout=90, every=2)


def test_the_sensor_launched_a_sync_that_succeeded(stack: Stack) -> None:
    def succeeded() -> list[dict[str, Any]]:
        return [one for one in stack.sync_runs() if one["status"] == "SUCCESS"]

    first, *_ = wait_for("a successful sync_home_assistant run", succeeded, timeout=180, every=2)
    timed("stack up until the first successful sync", stack.started)
    # The reconnect sensor's first-contact sync, or the live-mode watcher's connection sync.
    assert first["tags"].get("dagster/sensor_name") == "home_assistant_reconnect" or first["tags"]["homeiq/trigger"] == "watch"
    assert first["tags"]["homeiq/sync"] == "demo"
    assert [one for one in stack.sync_runs() if one["status"] == "FAILURE"] == []
    stack.successful_runs.add(first["runId"])


def copy_of_the_mirror(stack: Stack, destination: Path) -> sa.Engine:
    """A consistent copy (SQLite's backup API, inside the container as its user) of the mirror file."""
    container = stack.containers()["dagster-webserver"]
    backup = (
        f"import sqlite3; source = sqlite3.connect('file:{MIRROR}?mode=ro', uri=True); "
        "target = sqlite3.connect('/tmp/mirror-copy.db'); source.backup(target); target.close()"
    )
    run([stack.podman, "exec", container, "python3", "-c", backup])
    run([stack.podman, "cp", f"{container}:/tmp/mirror-copy.db", str(destination)])
    return sa.create_engine(f"sqlite:///{destination}")


def test_the_mirror_in_the_volume_has_the_demo_home(stack: Stack, tmp_path: Path) -> None:
    volume = json.loads(run([stack.podman, "volume", "inspect", f"{stack.project}_mirror"]).stdout)[0]
    assert (Path(volume["Mountpoint"]) / "demo.db").is_file()
    assert not (Path(volume["Mountpoint"]) / "homeiq.db").exists()  # demo rows never go to the real file

    engine = copy_of_the_mirror(stack, tmp_path / "mirror.db")
    try:
        assert_mirror_equals_ha(engine, load_recording()["results"], instance="demo")
        with engine.connect() as connection:
            (latest, *_) = recent_sync_runs(connection, "demo")
        assert latest["location_name"] == DEMO_LOCATION_NAME
    finally:
        engine.dispose()


def test_containers_stop_on_sigterm_within_seconds(stack: Stack) -> None:
    # A run the stop would cut short fails, as it should; here the sensor's and the watcher's
    # first syncs are let finish, so that the recreated stack can show a clean history.
    wait_for("the first syncs to finish",
             lambda: all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in stack.sync_runs()), timeout=180)
    # Clients before the servers they talk to (as compose down does): a client stopped after its
    # server could be stuck in a connect of its own, which would time the server, not the stop.
    order = ["watcher", "dagster-daemon", "dagster-webserver"]
    containers = sorted(stack.containers().items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    for service, container in containers:
        started = time.monotonic()
        run([stack.podman, "stop", "--time", "30", container], timeout=60)  # SIGKILL only after 30 s
        seconds = timed(f"stop on SIGTERM: {service}", started)
        code = run([stack.podman, "inspect", "--format", "{{.State.ExitCode}}", container]).stdout.strip()
        assert seconds < 10, f"{service} took {seconds:.1f} s to stop"
        assert code == "0", f"{service} exited {code} on SIGTERM"


def test_a_recreated_stack_keeps_dagsters_history_and_the_mirror(stack: Stack, tmp_path: Path) -> None:
    """What an upgrade does: new containers on the same volumes."""
    stack.compose("down", "--timeout", "10")  # keeps the volumes
    assert stack.containers() == {}
    stack.up()
    timed("stack re-created until the webserver answers", stack.started)

    runs = {one["runId"]: one["status"] for one in stack.sync_runs()}
    assert runs and all(status != "FAILURE" for status in runs.values())
    assert stack.successful_runs <= set(runs)
    engine = copy_of_the_mirror(stack, tmp_path / "mirror.db")
    try:
        assert_mirror_equals_ha(engine, load_recording()["results"], instance="demo")
    finally:
        engine.dispose()
    assert TIMINGS  # measured numbers are printed at the end of the session
