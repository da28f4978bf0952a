"""Run a real, offline Home Assistant for tests and scripts.

Two releases are tested, each in its own venv under the Python it needs (the project itself runs
on 3.11): 2025.4.4, the newest that installs under Python 3.13, and 2025.1.4, the newest that
installs under Python 3.12 (RELEASES). HA normally installs integration requirements from the
network at start-up; here they are pre-installed, pinned by that release's own
``package_constraints.txt``, and HA is started with ``UV_OFFLINE=1 PIP_NO_INDEX=1`` so it cannot
download anything. The configuration loads the ``demo`` and ``kitchen_sink`` integrations (a
populated, fully offline house) and binds only to 127.0.0.1.

Venvs: one directory per release under ``$HOMEIQ_HA_VENV`` (default ``~/.cache/homeiq/ha-venvs``),
e.g. ``$HOMEIQ_HA_VENV/2025.1.4``.

Library use::

    hass = ensure_venv(default_venv("2025.1.4"), ha_version="2025.1.4")
    with RealHomeAssistant(hass, tmp_path / "ha") as ha:
        devices = ws_command(ha.url, ha.token, "config/device_registry/list")

CLI::

    python scripts/real_ha.py install [--ha-version V | --all] [--venv DIR]
    python scripts/real_ha.py serve --config-dir DIR [--port N] [--ha-version V] [--venv DIR]
    python scripts/real_ha.py print-token --config-dir DIR

Only ``print-token`` ever writes the access token to stdout.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from homeiq_pipeline.homeassistant import CannotConnect, HomeAssistantClient, RequestTimeout  # noqa: E402



@dataclass(frozen=True)
class Release:
    """A Home Assistant release the real tier runs, and what it needs to start offline."""

    version: str
    python: str  # the interpreter's version: pyenv's, else python<major.minor> on PATH
    # Requirements HA would otherwise try to download at start-up with the configuration written
    # by write_config(). Found empirically (HA's log: "Unable to install package ..."); the
    # versions are this release's package_constraints.txt pins (the frontend) or its own
    # auth/mfa_modules/totp.py REQUIREMENTS (pyotp, PyQRCode: the "totp" MFA module). The whole
    # install is constrained by that file too, so pip never backtracks through newer packages.
    requirements: tuple[str, ...]


RELEASES: dict[str, Release] = {
    release.version: release
    for release in (
        Release("2025.4.4", "3.13.0", ("home-assistant-frontend==20250411.0", "pyotp==2.8.0", "PyQRCode==1.2.1")),
        # 2025.1.4 also lacks, among its own requirements, what 2025.4.4 made core requirements
        # and `demo` needs (conversation -> assist_pipeline -> tts, ffmpeg, camera): the pins of
        # those integrations' manifest.json.
        Release(
            "2025.1.4",
            "3.12.1",
            (
                "home-assistant-frontend==20250109.2",
                "pyotp==2.8.0",
                "PyQRCode==1.2.1",
                "mutagen==1.47.0",
                "ha-ffmpeg==3.2.2",
                "PyTurboJPEG==1.7.5",
                "pymicro-vad==1.0.1",
                "pyspeex-noise==1.0.2",
            ),
        ),
    )
}
HA_VERSIONS: tuple[str, ...] = tuple(RELEASES)  # every release the real tier runs against
HA_VERSION = "2025.4.4"  # the default: the newest release that runs here
VENV_ENV = "HOMEIQ_HA_VENV"  # a parent directory: one venv per release; CI points it at a fresh one


def venv_root() -> Path:
    """The directory holding one venv per release: ``$HOMEIQ_HA_VENV``, else ``~/.cache/homeiq/ha-venvs``."""
    return Path(os.environ.get(VENV_ENV) or Path.home() / ".cache" / "homeiq" / "ha-venvs")


def default_venv(ha_version: str = HA_VERSION) -> Path:
    """The venv of one release: ``<venv_root()>/<version>``."""
    return venv_root() / ha_version


DEFAULT_VENV = default_venv()

# Written to configuration.yaml; NOT default_config, whose cloud/zeroconf/ssdp/dhcp/bluetooth
# integrations reach the network.
CONFIG_TEMPLATE = """\
# Written by scripts/real_ha.py: an offline Home Assistant bound to loopback only.
http:
  server_host: 127.0.0.1
  server_port: {port}

demo:
kitchen_sink:
config:
api:
websocket_api:
onboarding:
recorder:
  db_url: "sqlite:///{db_path}"
history:
"""

# Without this, HA's network integration picks the external interface and binds mDNS there.
CORE_NETWORK = {
    "version": 1,
    "minor_version": 1,
    "key": "core.network",
    "data": {"configured_adapters": ["lo"]},
}

WS_TIMEOUT = 60.0  # seconds per answer; large homes send 20 MB frames
TOKEN_FILE = ".homeiq_token"
MARKER_FILE = "homeiq-installed.json"
OWNER = {"name": "HomeIQ Test", "username": "homeiq", "password": "homeiq-test-password"}


class HomeAssistantError(RuntimeError):
    """A real Home Assistant did not do what was asked."""


# --------------------------------------------------------------------------- venv


def find_python(ha_version: str = HA_VERSION) -> str:
    """The interpreter a release needs: pyenv's (e.g. 3.12.1), else ``python3.12`` on PATH."""
    release = RELEASES[ha_version]
    if shutil.which("pyenv"):
        result = subprocess.run(["pyenv", "prefix", release.python], capture_output=True, text=True, check=False)
        candidate = Path(result.stdout.strip()) / "bin" / "python"
        if result.returncode == 0 and candidate.is_file():
            return str(candidate)
    minor = ".".join(release.python.split(".")[:2])
    found = shutil.which(f"python{minor}")
    if found:
        return found
    raise RuntimeError(
        f"Python {minor} not found: neither `pyenv prefix {release.python}` nor `python{minor}` on PATH "
        f"(Home Assistant {ha_version} needs Python {minor})"
    )


def _run_pip(python: Path, args: list[str]) -> None:
    """Run ``python -m pip ARGS``; raise with the tail of pip's output on failure."""
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{tail}")


def ensure_venv(venv_dir: Path, python: str | None = None, ha_version: str = HA_VERSION) -> Path:
    """Create the venv of one release and install HA plus its requirements; return ``hass``.

    Everything is installed in one pip run constrained by the release's own
    ``package_constraints.txt`` (read from its wheel). A marker file records what was installed,
    so a second call returns at once; a lock file lets concurrent test sessions wait for one build.
    """
    release = RELEASES[ha_version]
    venv_dir = Path(venv_dir)
    hass = venv_dir / "bin" / "hass"
    venv_python = venv_dir / "bin" / "python"
    marker = venv_dir / MARKER_FILE
    wanted = {"homeassistant": ha_version, "requirements": list(release.requirements)}

    def installed() -> bool:
        return hass.is_file() and marker.is_file() and json.loads(marker.read_text()) == wanted

    if installed():
        return hass
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(venv_dir.parent / f".{venv_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if installed():  # another session built it while we waited
            return hass
        if not venv_python.is_file():
            interpreter = python or find_python(ha_version)
            subprocess.run([interpreter, "-m", "venv", str(venv_dir)], check=True)
        with tempfile.TemporaryDirectory(prefix="homeiq-ha-wheel-") as tmp:
            _run_pip(venv_python, ["download", "--no-deps", "--only-binary=:all:", "-d", tmp, f"homeassistant=={ha_version}"])
            wheel = next(Path(tmp).glob("homeassistant-*.whl"))
            constraints = Path(tmp) / "package_constraints.txt"
            with zipfile.ZipFile(wheel) as archive:
                constraints.write_bytes(archive.read("homeassistant/package_constraints.txt"))
            _run_pip(venv_python, ["install", "-c", str(constraints), str(wheel), *release.requirements])
        marker.write_text(json.dumps(wanted, indent=2) + "\n")
    return hass


# --------------------------------------------------------------------------- config


def write_config(config_dir: Path, port: int, extra_yaml: str = "") -> None:
    """Write configuration.yaml (loopback, demo + kitchen_sink) and .storage/core.network."""
    config_dir = Path(config_dir)
    (config_dir / ".storage").mkdir(parents=True, exist_ok=True)
    text = CONFIG_TEMPLATE.format(port=port, db_path=(config_dir / "home-assistant_v2.db"))
    if extra_yaml:
        text += "\n" + extra_yaml.rstrip() + "\n"
    (config_dir / "configuration.yaml").write_text(text)
    core_network = config_dir / ".storage" / "core.network"
    core_network.write_text(json.dumps(CORE_NETWORK, indent=2) + "\n")


def configured_port(config_dir: Path) -> int | None:
    """The ``server_port`` of an existing configuration.yaml, or None."""
    path = Path(config_dir) / "configuration.yaml"
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        key, _, value = line.strip().partition(":")
        if key == "server_port" and value.strip().isdigit():
            return int(value)
    return None


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and that the kernel never hands out by itself: a
    server binds it seconds later (or binds it again after a restart), and meanwhile outgoing
    connections take their ports from the ephemeral range, which this avoids."""
    low, high = _ephemeral_range()
    candidates = [port for port in range(20_000, 65_536) if not low <= port <= high]
    for port in random.sample(candidates, 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: try another
            return port
    raise RuntimeError("no free port on 127.0.0.1 in 200 tries")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default


# --------------------------------------------------------------------------- websocket


def ws_command(url: str, token: str, type: str, **payload: Any) -> Any:
    """Open a connection (the project's own client), send one command and return its ``result``;
    raises ``CommandFailed`` with HA's code and message on ``success: false``."""
    with HomeAssistantClient(url, token, timeout=WS_TIMEOUT) as client:
        return client.command(type, **payload)


# --------------------------------------------------------------------------- REST (onboarding)


def _post(url: str, body: bytes, content_type: str) -> dict[str, Any]:
    """POST and decode a JSON answer; raise with HA's message on an HTTP error."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:500]
        raise HomeAssistantError(f"POST {url} -> HTTP {err.code}: {detail}") from err


def onboard_owner(url: str) -> str:
    """Create the owner user via onboarding and return a short-lived access token."""
    client_id = f"{url}/"
    user = _post(
        f"{url}/api/onboarding/users",
        json.dumps({"client_id": client_id, "language": "en", **OWNER}).encode(),
        "application/json",
    )
    form = {"grant_type": "authorization_code", "code": user["auth_code"], "client_id": client_id}
    tokens = _post(
        f"{url}/auth/token",
        urllib.parse.urlencode(form).encode(),
        "application/x-www-form-urlencoded",
    )
    return str(tokens["access_token"])


def onboarding_open(url: str) -> bool:
    """True once ``GET /api/onboarding`` answers 200 (its views are registered)."""
    try:
        with urllib.request.urlopen(f"{url}/api/onboarding", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# --------------------------------------------------------------------------- the server


class RealHomeAssistant:
    """A real ``hass`` process on 127.0.0.1, started and stopped by this object.

    If ``configuration.yaml`` is missing, start() writes one with write_config(). The
    long-lived token is created on the first start and kept in ``config_dir/.homeiq_token``.
    """

    def __init__(self, hass: Path, config_dir: Path, port: int | None = None) -> None:
        self.hass = Path(hass)
        self.config_dir = Path(config_dir).resolve()
        existing = configured_port(self.config_dir)
        if port is not None and existing is not None and port != existing:
            raise ValueError(f"{self.config_dir} is configured for port {existing}, not {port}")
        self.port: int = port or existing or free_port()
        self.token_file = self.config_dir / TOKEN_FILE
        self._token: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        """The long-lived access token (available after the first start())."""
        if self._token is None and self.token_file.is_file():
            self._token = self.token_file.read_text().strip()
        if self._token is None:
            raise HomeAssistantError("no token yet: call start() first")
        return self._token

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_alive(self) -> bool:
        """True while the ``hass`` process we started has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 120, *, wait: bool = True) -> None:
        """Start ``hass`` and return once ``get_config`` says RUNNING.

        ``wait=False`` returns right after spawning (tests that watch HA start up); it needs a
        config dir that already has its token, since onboarding has to wait for HA anyway.
        """
        if self._proc is not None:
            raise HomeAssistantError("already started")
        if not (self.config_dir / "configuration.yaml").is_file():
            write_config(self.config_dir, self.port)
        if (self.config_dir / ".storage" / "auth").is_file() and not self.token_file.is_file():
            raise HomeAssistantError(
                f"{self.config_dir} is already onboarded but {TOKEN_FILE} is missing; "
                "use a fresh config dir"
            )
        if not wait and not self.token_file.is_file():
            raise HomeAssistantError("start(wait=False) needs a config dir that has its token")
        self._spawn()
        if wait:
            self.wait_until_running(timeout)

    def wait_until_running(self, timeout: float = 120) -> None:
        """Onboard if needed, then wait for RUNNING; stop HA and raise (with its log) on failure."""
        deadline = time.monotonic() + timeout
        try:
            if not self.token_file.is_file():
                self._wait_until(onboarding_open, deadline, "onboarding API")
                self._create_token()
            self._wait_until(self._is_running, deadline, "state RUNNING")
        except BaseException:
            self.stop()
            raise

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of ``hass.out`` (HA's own log), for error messages."""
        log = self.config_dir / "hass.out"
        if not log.is_file():
            return f"({log} does not exist)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the ``hass`` process we started; SIGKILL it if it has not exited in time."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, timeout: float = 120) -> None:
        """Stop and start again on the same port, with the same token."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> RealHomeAssistant:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self) -> None:
        """Popen ``hass -c CONFIG_DIR`` offline, in its own process group, output to hass.out."""
        # HA installs missing requirements with `uv pip install`: make that fail, not download.
        env = {**os.environ, "UV_OFFLINE": "1", "PIP_NO_INDEX": "1"}
        with open(self.config_dir / "hass.out", "ab") as out:
            out.write(f"\n=== real_ha.py start {time.strftime('%F %T')}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                [str(self.hass), "-c", str(self.config_dir)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: a Ctrl-C meant for us skips HA
            )

    def _wait_until(self, check: Callable[[str], bool], deadline: float, what: str) -> None:
        """Poll ``check(url)`` until true; fail fast if hass exits or the deadline passes."""
        while not check(self.url):
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                raise HomeAssistantError(
                    f"hass exited (code {code}) before {what}; last lines of "
                    f"{self.config_dir}/hass.out:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise HomeAssistantError(
                    f"timed out waiting for {what} at {self.url}; last lines of "
                    f"{self.config_dir}/hass.out:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def _is_running(self, url: str) -> bool:
        """True once ``get_config`` answers with ``state == "RUNNING"``."""
        try:
            config = ws_command(url, self.token, "get_config")
        except (CannotConnect, RequestTimeout):
            return False  # not listening yet, or the websocket view is not registered yet
        return bool(config.get("state") == "RUNNING")

    def _create_token(self) -> None:
        """Onboard the owner, create a long-lived token and save it (mode 0600)."""
        access = onboard_owner(self.url)
        token = ws_command(
            self.url,
            access,
            "auth/long_lived_access_token",
            client_name="homeiq-pipeline tests",
            lifespan=3650,
        )
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(str(token) + "\n")
        self._token = str(token)


# --------------------------------------------------------------------------- CLI


def _serve(args: argparse.Namespace) -> int:
    """Start HA and keep it running until SIGTERM or Ctrl-C."""
    hass = ensure_venv(args.venv or default_venv(args.ha_version), ha_version=args.ha_version)
    ha = RealHomeAssistant(hass, args.config_dir, args.port)
    stop_requested = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    ha.start()
    print(f"HA_URL={ha.url}", flush=True)
    print(f"HA_TOKEN_FILE={ha.token_file}", flush=True)
    print(f"HA_PID={ha.pid}", flush=True)
    try:
        while not stop_requested and ha.is_alive():
            time.sleep(0.5)
        exited = not stop_requested
    finally:
        ha.stop()
    if exited:
        print(f"hass exited on its own; see {ha.config_dir}/hass.out", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="create a release's HA venv and print its hass path")
    install.add_argument("--ha-version", choices=HA_VERSIONS, default=HA_VERSION)
    install.add_argument("--all", action="store_true", help="every release in RELEASES, side by side")
    install.add_argument("--venv", type=Path, default=None, help=f"default: ${VENV_ENV}/<version>")
    serve = sub.add_parser("serve", help="run HA until SIGTERM / Ctrl-C")
    serve.add_argument("--config-dir", type=Path, required=True)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--ha-version", choices=HA_VERSIONS, default=HA_VERSION)
    serve.add_argument("--venv", type=Path, default=None, help=f"default: ${VENV_ENV}/<version>")
    show = sub.add_parser("print-token", help="print the saved long-lived token (secret!)")
    show.add_argument("--config-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "install":
        if args.all and args.venv:
            parser.error("--all installs into $HOMEIQ_HA_VENV/<version>: drop --venv")
        started = time.monotonic()

        def build(version: str) -> None:
            hass = ensure_venv(args.venv or default_venv(version), ha_version=version)
            print(f"{hass}  (Home Assistant {version}, {time.monotonic() - started:.0f} s)", flush=True)

        # The releases build side by side: pip waits on downloads and disk about as much as on the CPU.
        with ThreadPoolExecutor() as pool:
            list(pool.map(build, HA_VERSIONS if args.all else (args.ha_version,)))
        return 0
    if args.command == "serve":
        return _serve(args)
    print((args.config_dir / TOKEN_FILE).read_text().strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
