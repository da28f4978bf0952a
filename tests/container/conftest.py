"""The container tier: builds the image with podman (no Docker engine here) and runs the compose
file's demo profile, read through Dagster's GraphQL API and the mirror file in its volume.

Nothing is pulled: no registry is reachable, so the base image is a local debootstrap Debian
(docker/build-base-image.sh) and the wheels are built on this machine (docker/build-wheels.sh);
both are cached under $HOMEIQ_CONTAINER_CACHE (default ~/.cache/homeiq/container). Everything a
test creates (containers, volumes, network, the image) carries the test's own names and is removed
at the end, also after a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from ..helpers import NEVER_DURING_TESTS, free_port, graphql, sync_runs, wait_for
from ..servers import REQUIRED_BY, missing

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
BASE_IMAGE = os.environ.get("HOMEIQ_BASE_IMAGE_FOR_TESTS", "localhost/homeiq-base:bookworm-python3.11")
IMAGE_PYTHON = "3.11"  # the base image's Python: the wheels must match it
SENSOR_INTERVAL = 5
HOW_TO_SET_UP = "as root, run `bash docker/setup-podman.sh` (Debian: podman, buildah, runc, debootstrap; podman-compose)"

# What the tier measured, printed at the end of the session.
TIMINGS: dict[str, str] = {}


def not_available(what: str) -> NoReturn:
    missing(
        f"CONTAINER TIER NOT RUN: {what}. To run it, {HOW_TO_SET_UP}. "
        f"({REQUIRED_BY}=1, which CI sets, turns this skip into a failure.)"
    )


def run(command: list[str], *, timeout: float = 120, check: bool = True, **options: Any) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail with its output (the last 4,000 characters)."""
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, **options)
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        pytest.fail(f"`{' '.join(command)}` exited {result.returncode}:\n{output}", pytrace=False)
    return result


def timed(name: str, started: float) -> float:
    seconds = time.monotonic() - started
    TIMINGS[name] = f"{seconds:.1f} s"
    return seconds


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("container tier: measured")
        for name, value in TIMINGS.items():
            terminalreporter.write_line(f"{name:<48} {value}")


def podman_compose() -> str | None:
    return shutil.which("podman-compose") or next(
        (str(p) for p in [Path("/opt/homeiq/podman-compose/bin/podman-compose")] if p.exists()), None
    )


def image_python() -> str | None:
    """A Python of the image's minor version, to build wheels the image can install."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == IMAGE_PYTHON:
        return sys.executable
    return shutil.which(f"python{IMAGE_PYTHON}")


@pytest.fixture(scope="session")
def tools() -> dict[str, str]:
    """podman and podman-compose, usable; else a loud skip (CI: a failure)."""
    podman = shutil.which("podman")
    compose = podman_compose()
    if not podman or not compose:
        not_available(f"{'podman' if not podman else 'podman-compose'} is not installed")
    info = subprocess.run([podman, "info", "--format", "{{.Host.OCIRuntime.Name}}"], check=False, capture_output=True, text=True)
    if info.returncode != 0:
        not_available(f"`podman info` fails: {info.stderr.strip()[-500:]}")
    if not image_python():
        not_available(f"no Python {IMAGE_PYTHON} to build the image's wheels with (python{IMAGE_PYTHON} on PATH)")
    return {"podman": podman, "compose": compose}


@pytest.fixture(scope="session")
def image(tools: dict[str, str]) -> Iterator[str]:
    """The project's image, built offline from docker/Dockerfile; removed when the session ends."""
    podman = tools["podman"]
    tag = f"localhost/homeiq-pipeline:test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHON": image_python() or "python3"}

    exists = subprocess.run([podman, "image", "exists", BASE_IMAGE], check=False).returncode == 0
    if not exists and (os.geteuid() != 0 or not shutil.which("debootstrap")):
        not_available(f"the base image {BASE_IMAGE} is missing and building it needs root and debootstrap")
    started = time.monotonic()
    run(["bash", str(DOCKER / "build-base-image.sh"), BASE_IMAGE], timeout=600, env=env)
    timed("base image (debootstrap + import, or the cache)", started)

    started = time.monotonic()
    run(["bash", str(DOCKER / "build-wheels.sh"), str(DOCKER / "wheels")], timeout=600, env=env)
    timed("wheels (host pip wheel, or the cache)", started)

    started = time.monotonic()
    try:
        run(
            ["bash", str(DOCKER / "build-image.sh"), "--offline", "--base-image", BASE_IMAGE, "--tag", tag,
             "--", "--layers=false"],
            timeout=900, env=env,
        )
        timed("image build (podman build, offline)", started)
        size = run([podman, "image", "inspect", "--format", "{{.Size}}", tag]).stdout.strip()
        TIMINGS["image size"] = f"{int(size) / 1e6:.0f} MB"
        yield tag
    finally:
        subprocess.run([podman, "rmi", "--force", tag], check=False, capture_output=True)


@dataclass
class Stack:
    """The compose demo profile, under a project name of its own."""

    podman: str
    command: list[str]  # podman-compose with the file, env file and project name
    env: dict[str, str]
    project: str
    url: str
    logs: Path
    started: float = field(default_factory=time.monotonic)
    successful_runs: set[str] = field(default_factory=set)  # run ids seen by the tests

    def compose(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run([*self.command, *args], timeout=timeout, env=self.env, cwd=ROOT)

    def containers(self) -> dict[str, str]:
        """Service name -> container name."""
        listing = run([self.podman, "ps", "--all", "--format", "json", "--filter", f"label=io.podman.compose.project={self.project}"])
        return {c["Labels"]["com.docker.compose.service"]: c["Names"][0] for c in json.loads(listing.stdout or "[]")}

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        return graphql(self.url, query, **variables)

    def sync_runs(self) -> list[dict[str, Any]]:
        return sync_runs(self.url)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def up(self) -> None:
        self.started = time.monotonic()
        self.compose("up", "--detach", "--no-build")
        wait_for("the Dagster webserver in its container", self.answers, timeout=180)

    def save_logs(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for service, container in self.containers().items():
            result = subprocess.run([self.podman, "logs", container], check=False, capture_output=True, text=True)
            (self.logs / f"{service}.log").write_text(result.stdout + result.stderr)


def demo_settings(**overrides: str) -> dict[str, str]:
    """docker/demo.env (what a person runs), with the test's overrides."""
    settings: dict[str, str] = {}
    for line in (DOCKER / "demo.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return {**settings, **overrides}


@pytest.fixture(scope="module")
def stack(tools: dict[str, str], image: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("compose")
    project = f"homeiq-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    settings = demo_settings(
        HOMEIQ_IMAGE=image, HOMEIQ_BIND="127.0.0.1", HOMEIQ_PORT=str(port),
        HA_SENSOR_INTERVAL_SECONDS=str(SENSOR_INTERVAL), COMPOSE_PROJECT_NAME=project,
        HA_REFRESH_CRON=NEVER_DURING_TESTS,  # no hourly run landing inside a test's window
    )
    env_file = tmp / "demo-test.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    # The shell's variables win over the env file in compose: keep ours out of the way.
    env = {k: v for k, v in os.environ.items()
           if k not in settings and not k.startswith(("HA_", "HOMEIQ_", "INFLUXDB_", "COMPOSE_", "DAGSTER_"))}
    stack = Stack(
        podman=tools["podman"],
        command=[tools["compose"], "--file", str(COMPOSE_FILE), "--env-file", str(env_file), "--project-name", project],
        env=env, project=project, url=f"http://127.0.0.1:{port}", logs=tmp / "logs",
    )
    failed_before = request.session.testsfailed
    try:
        stack.up()
        timed("stack up until the webserver answers", stack.started)
        yield stack
    finally:
        try:
            stack.save_logs()
            if request.session.testsfailed > failed_before:
                show_logs(request.config, stack.logs)
        finally:
            teardown(stack)


def show_logs(config: pytest.Config, logs: Path) -> None:
    """The containers' last log lines, on the terminal (past pytest's capture)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for log in sorted(logs.glob("*.log")):
            reporter.write_line(f"\n----- {log.name} (last 40 lines; all in {log}) -----")
            for line in log.read_text().splitlines()[-40:]:
                reporter.write_line(line)


def teardown(stack: Stack) -> None:
    """compose down -v, then remove whatever is still labelled with the test's project."""
    subprocess.run([*stack.command, "down", "--volumes", "--timeout", "10"], check=False, capture_output=True, env=stack.env, cwd=ROOT, timeout=180)
    label = f"label=io.podman.compose.project={stack.project}"
    for kind, remove in (("ps", ["rm", "--force", "--volumes"]), ("volume", ["volume", "rm", "--force"]), ("network", ["network", "rm", "--force"])):
        listing = [stack.podman, kind, "--all", "--quiet", "--filter", label] if kind == "ps" else [stack.podman, kind, "ls", "--quiet", "--filter", label]
        leftovers = subprocess.run(listing, check=False, capture_output=True, text=True).stdout.split()
        if leftovers:
            subprocess.run([stack.podman, *remove, *leftovers], check=False, capture_output=True)
