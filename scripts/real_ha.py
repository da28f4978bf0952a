"""Run a real, offline Home Assistant for tests and scripts.

Home Assistant 2025.4.4 is the newest release that installs under Python 3.13, so it lives in
its own venv (the project itself runs on 3.11). HA normally installs integration requirements
from the network at start-up; here they are pre-installed and HA is started with
``UV_OFFLINE=1 PIP_NO_INDEX=1`` so it cannot download anything. The configuration loads the
``demo`` and ``kitchen_sink`` integrations (a populated, fully offline house) and binds only to
127.0.0.1. The venv lives in ``$HOMEIQ_HA_VENV`` (default ``~/.cache/homeiq/ha-venv``).

Library use::

    hass = ensure_venv(DEFAULT_VENV)
    with RealHomeAssistant(hass, tmp_path / "ha") as ha:
        devices = ws_command(ha.url, ha.token, "config/device_registry/list")

CLI::

    python scripts/real_ha.py install [--venv DIR]
    python scripts/real_ha.py serve --config-dir DIR [--port N] [--venv DIR]
    python scripts/real_ha.py print-token --config-dir DIR

Only ``print-token`` ever writes the access token to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from homeiq_pipeline.homeassistant import CannotConnect, HomeAssistantClient, RequestTimeout  # noqa: E402

HA_VERSION = "2025.4.4"
VENV_ENV = "HOMEIQ_HA_VENV"  # CI points this at a fresh directory; users keep the cached default


def default_venv() -> Path:
    """The HA venv directory: ``$HOMEIQ_HA_VENV``, else ``~/.cache/homeiq/ha-venv``."""
    return Path(os.environ.get(VENV_ENV) or Path.home() / ".cache" / "homeiq" / "ha-venv")


DEFAULT_VENV = default_venv()

# Requirements HA would otherwise try to download at start-up with the configuration written by
# write_config(). Found empirically (HA's log: "Unable to install package ..."); versions are
# the pins of HA 2025.4.4's package_constraints.txt or, where it has none, of the integration's
# manifest.json. pyotp and PyQRCode are needed by the auth "totp" MFA module.
EXTRA_REQUIREMENTS: tuple[str, ...] = (
    "home-assistant-frontend==20250411.0",
    "pyotp==2.8.0",
    "PyQRCode==1.2.1",
)

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


def find_python313() -> str:
    """Return a Python 3.13 interpreter: pyenv's 3.13.0, else ``python3.13`` on PATH."""
    if shutil.which("pyenv"):
        result = subprocess.run(
            ["pyenv", "prefix", "3.13.0"], capture_output=True, text=True, check=False
        )
        candidate = Path(result.stdout.strip()) / "bin" / "python"
        if result.returncode == 0 and candidate.is_file():
            return str(candidate)
    found = shutil.which("python3.13")
    if found:
        return found
    raise RuntimeError(
        "Python 3.13 not found: neither `pyenv prefix 3.13.0` nor `python3.13` on PATH "
        f"(Home Assistant {HA_VERSION} needs Python 3.13)"
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
    """Create the HA venv and install HA plus EXTRA_REQUIREMENTS; return the ``hass`` path.

    A marker file records what was installed, so a second call returns at once.
    """
    venv_dir = Path(venv_dir)
    hass = venv_dir / "bin" / "hass"
    venv_python = venv_dir / "bin" / "python"
    marker = venv_dir / MARKER_FILE
    wanted = {"homeassistant": ha_version, "requirements": list(EXTRA_REQUIREMENTS)}
    if hass.is_file() and marker.is_file() and json.loads(marker.read_text()) == wanted:
        return hass

    if not venv_python.is_file():
        interpreter = python or find_python313()
        subprocess.run([interpreter, "-m", "venv", str(venv_dir)], check=True)
    _run_pip(venv_python, ["install", f"homeassistant=={ha_version}"])
    # HA's own pins, shipped inside the package just installed.
    constraints = _site_packages(venv_python) / "homeassistant" / "package_constraints.txt"
    _run_pip(venv_python, ["install", "-c", str(constraints), *EXTRA_REQUIREMENTS])
    marker.write_text(json.dumps(wanted, indent=2) + "\n")
    return hass


def _site_packages(venv_python: Path) -> Path:
    """The purelib directory of the venv whose interpreter is ``venv_python``."""
    out = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


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
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    hass = ensure_venv(args.venv)
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
    install = sub.add_parser("install", help="create the HA venv and print the hass path")
    install.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    serve = sub.add_parser("serve", help="run HA until SIGTERM / Ctrl-C")
    serve.add_argument("--config-dir", type=Path, required=True)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    show = sub.add_parser("print-token", help="print the saved long-lived token (secret!)")
    show.add_argument("--config-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "install":
        print(ensure_venv(args.venv))
        return 0
    if args.command == "serve":
        return _serve(args)
    print((args.config_dir / TOKEN_FILE).read_text().strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
