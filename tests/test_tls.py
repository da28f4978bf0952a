"""TLS: a real TLS endpoint on 127.0.0.1 (a test CA and server certificate made by `trustme`) in
front of the protocol server. Verification passes with the CA bundle configured, fails with a
clear error without it (or with another CA, or a certificate for another name), and the explicit
opt-out works and logs a warning: through the client, the CLI, and the Dagster resource, sensor and
sync asset.
"""

from __future__ import annotations

import logging
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import trustme

from homeiq_pipeline import cli, storage
from homeiq_pipeline import homeassistant as ha
from homeiq_pipeline.definitions import defs
from homeiq_pipeline.defs.home_assistant import assets as ha_assets
from homeiq_pipeline.defs.home_assistant import sensors
from homeiq_pipeline.defs.home_assistant.resources import HomeAssistantHome, HomeAssistantResource
from homeiq_pipeline.defs.resources import MirrorDatabase

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN
from .mirror_checks import assert_mirror_equals_ha

DISABLED_WARNING = "TLS certificate verification is DISABLED"
NOT_VERIFIED = r"TLS handshake with Home Assistant failed: .*CERTIFICATE_VERIFY_FAILED"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def tls_server(ca: trustme.CA, *names: str) -> FakeHomeAssistant:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return FakeHomeAssistant(token=TOKEN, ssl_context=context)


@pytest.fixture
def https_ha(ca: trustme.CA) -> Iterator[FakeHomeAssistant]:
    with tls_server(ca, "127.0.0.1") as server:
        assert server.url.startswith("https://127.0.0.1:")
        yield server


def fetch(url: str, **options: object) -> ha.Snapshot:
    with ha.HomeAssistantClient(url, TOKEN, timeout=10, **options) as client:  # type: ignore[arg-type]
        return ha.fetch_snapshot(client)


# -- client -----------------------------------------------------------------------------------------


def test_the_client_verifies_against_the_configured_ca_bundle(https_ha: FakeHomeAssistant, ca_bundle: str) -> None:
    snapshot = fetch(https_ha.url, ca_bundle=ca_bundle)
    assert snapshot.counts()["states"] == len(https_ha.results["get_states"])
    assert https_ha.commands_seen[:2] == ["supported_features", "get_config"]


def test_without_the_ca_the_certificate_is_refused_by_default(https_ha: FakeHomeAssistant) -> None:
    with pytest.raises(ha.CannotConnect, match=NOT_VERIFIED) as raised:
        fetch(https_ha.url)
    assert TOKEN not in str(raised.value)
    assert isinstance(raised.value, ha.CertificateNotTrusted)
    # Every auth message counts as one or the other: none arrived, so the token was never sent.
    assert https_ha.connections == 0 and https_ha.auth_failures == 0


def test_another_ca_is_refused(https_ha: FakeHomeAssistant, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(ha.CannotConnect, match=NOT_VERIFIED):
        fetch(https_ha.url, ca_bundle=str(other))


def test_a_certificate_for_another_name_is_refused(ca: trustme.CA, ca_bundle: str) -> None:
    with tls_server(ca, "homeassistant.example") as server, pytest.raises(ha.CannotConnect, match=r"IP address mismatch|hostname"):
        fetch(server.url, ca_bundle=ca_bundle)


def test_the_explicit_opt_out_connects_and_warns(https_ha: FakeHomeAssistant, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="homeiq_pipeline"):
        snapshot = fetch(https_ha.url, verify_tls=False)
    assert snapshot.counts()["devices"] == len(https_ha.results["config/device_registry/list"])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and DISABLED_WARNING in r.getMessage()]
    assert len(warnings) == 1 and https_ha.url.replace("https", "wss") in warnings[0].getMessage()


def test_a_plain_websocket_client_against_tls_fails_clearly(https_ha: FakeHomeAssistant) -> None:
    with pytest.raises(ha.HomeAssistantError) as raised:
        fetch(https_ha.url.replace("https://", "http://"))
    assert isinstance(raised.value, ha.CannotConnect | ha.ProtocolError), repr(raised.value)


class _PlainHttp(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the ClientHello it refuses is not a test's output
        pass


def test_https_against_a_plain_http_server_hints_at_http() -> None:
    """Like Home Assistant without TLS, a plain HTTP server answers the TLS ClientHello with an HTTP
    400, which OpenSSL reads as a record of an unknown version."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PlainHttp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ha.CannotConnect) as raised:
            fetch(f"https://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    message = str(raised.value)
    assert message.startswith("TLS handshake with Home Assistant failed"), message
    assert message.endswith("(the server may speak plain http: use http:// or ws://)"), message
    assert not isinstance(raised.value, ha.CertificateNotTrusted)


def test_other_tls_failures_carry_no_plain_http_hint(https_ha: FakeHomeAssistant) -> None:
    with pytest.raises(ha.CannotConnect) as raised:
        fetch(https_ha.url)
    assert "plain http" not in str(raised.value)


# -- CLI --------------------------------------------------------------------------------------------


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("HA_TOKEN", TOKEN)
    monkeypatch.setenv("HOMEIQ_DB_URL", sqlite_url)
    for name in ("HA_CA_BUNDLE", "HA_VERIFY_TLS", "HA_URL", "HOMEIQ_HOMES_FILE"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _synced_rows(sqlite_url: str) -> int:
    engine = storage.create_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(storage.sync_runs)).scalar_one()
    except sa.exc.OperationalError:  # no tables: nothing was ever written
        return 0
    finally:
        engine.dispose()


def test_the_cli_verifies_with_ca_bundle_flag_and_env(
    https_ha: FakeHomeAssistant, ca_bundle: str, run_cli, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    code, _, err = run_cli("sync", "--ha-url", https_ha.url, "--ca-bundle", ca_bundle)
    assert code == cli.EXIT_OK, err
    monkeypatch.setenv("HA_CA_BUNDLE", ca_bundle)
    code, _, err = run_cli("sync", "--ha-url", https_ha.url)
    assert code == cli.EXIT_OK, err
    assert DISABLED_WARNING not in err
    assert _synced_rows(sqlite_url) == 2


def test_the_cli_without_the_ca_fails_clearly_and_writes_nothing(https_ha: FakeHomeAssistant, run_cli, sqlite_url: str) -> None:
    code, out, err = run_cli("sync", "--ha-url", https_ha.url)
    assert code == cli.EXIT_CONFIG  # a setting (the CA bundle) must change: trying again later cannot help
    assert "TLS handshake with Home Assistant failed" in err and "CERTIFICATE_VERIFY_FAILED" in err
    assert TOKEN not in out + err
    assert _synced_rows(sqlite_url) == 0


@pytest.mark.parametrize("how", ["--insecure", "HA_VERIFY_TLS=false"])
def test_the_cli_opt_out_syncs_and_warns(https_ha: FakeHomeAssistant, how: str, sqlite_url: str) -> None:
    """As its own process, so the warning is read from the real stderr."""
    extra = [how] if how.startswith("--") else []
    env = {**os.environ, "HA_TOKEN": TOKEN, "HOMEIQ_DB_URL": sqlite_url}
    for name in ("HA_CA_BUNDLE", "HA_VERIFY_TLS", "HA_URL", "HOMEIQ_HOMES_FILE"):
        env.pop(name, None)
    if not extra:
        env["HA_VERIFY_TLS"] = "false"
    done = subprocess.run(
        [sys.executable, "-m", "homeiq_pipeline.cli", "sync", "--ha-url", https_ha.url, *extra],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == cli.EXIT_OK, done.stderr
    assert DISABLED_WARNING in done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert _synced_rows(sqlite_url) == 1


# -- Dagster ----------------------------------------------------------------------------------------


def resource(server: FakeHomeAssistant, **tls: object) -> HomeAssistantResource:
    return HomeAssistantResource(homes=[HomeAssistantHome(name="home", url=server.url, token=TOKEN, **tls)], timeout=10)  # type: ignore[arg-type]


def materialize(server: FakeHomeAssistant, sqlite_url: str, **tls: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [ha_assets.home_assistant_mirror],
        resources={"home_assistant": resource(server, **tls), "mirror": MirrorDatabase(url=sqlite_url)},
        partition_key="home",
        raise_on_error=False,
    )


def test_the_dagster_sync_verifies_with_the_ca_bundle(https_ha: FakeHomeAssistant, ca_bundle: str, sqlite_url: str) -> None:
    result = materialize(https_ha, sqlite_url, ca_bundle=ca_bundle)
    assert result.success
    engine = storage.create_engine(sqlite_url)
    try:
        assert_mirror_equals_ha(engine, https_ha.results)
    finally:
        engine.dispose()


def test_the_dagster_sync_without_the_ca_fails_at_once_naming_tls(https_ha: FakeHomeAssistant, sqlite_url: str) -> None:
    result = materialize(https_ha, sqlite_url)
    assert not result.success
    events = [event.event_type_value for event in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in events  # a setting to fix: retrying would not help
    failure = next(event for event in result.all_events if event.event_type_value == "STEP_FAILURE")
    text = str(failure.event_specific_data.error)  # type: ignore[union-attr]
    assert "TLS handshake with Home Assistant failed" in text and "CERTIFICATE_VERIFY_FAILED" in text
    assert "HA_CA_BUNDLE" in text and TOKEN not in text


def test_the_dagster_sync_opt_out_works_and_warns(
    https_ha: FakeHomeAssistant, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="homeiq_pipeline"):
        result = materialize(https_ha, sqlite_url, verify_tls=False)
    assert result.success
    assert any(DISABLED_WARNING in record.getMessage() for record in caplog.records)


def test_the_reconnect_sensor_verifies_tls(https_ha: FakeHomeAssistant, ca_bundle: str) -> None:
    repository = defs().get_repository_def()
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None = None, **tls: object) -> dg.SensorResult:  # no cursor: a first contact
            context = dg.build_sensor_context(
                cursor=cursor,
                instance=instance,
                resources={"home_assistant": resource(https_ha, **tls)},
                repository_def=repository,
            )
            return sensors.home_assistant_reconnect.evaluate_tick(context)

        assert len(tick(ca_bundle=ca_bundle).run_requests or []) == 1
        refused = tick()
        assert not refused.run_requests
        assert (refused.skip_message or "").startswith(
            "home: certificate not trusted: TLS handshake with Home Assistant failed"
        ), refused.skip_message
        # Nothing new to remember since: the tick fails (red in the UI) until the CA bundle is fixed.
        with pytest.raises(sensors.HomeNeedsAPerson, match="CERTIFICATE_VERIFY_FAILED") as failed:
            tick(refused.cursor)
        assert str(failed.value) == refused.skip_message
        assert https_ha.auth_failures == 0  # the token is never sent to a server not trusted
        assert len(tick(refused.cursor, ca_bundle=ca_bundle).run_requests or []) == 1  # fixed: reconnected
        assert len(tick(verify_tls=False).run_requests or []) == 1


# -- live mode ------------------------------------------------------------------------------------


def test_the_watcher_stops_at_once_on_an_untrusted_certificate(https_ha: FakeHomeAssistant, tmp_path: Path) -> None:
    """As its own process: exit code 2, the reason, one attempt, and the token never sent."""
    env = {**os.environ, "HA_URL": https_ha.url, "HA_TOKEN": TOKEN, "HOMEIQ_DB_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    for name in ("HA_CA_BUNDLE", "HA_VERIFY_TLS", "HOMEIQ_HOMES_FILE"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "homeiq_pipeline.cli", "watch", "--direct"], env=env,
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == cli.EXIT_CONFIG, done.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr and "stopping the watcher, not retrying" in done.stderr
    assert "fix the CA bundle" in done.stderr
    assert done.stderr.count("TLS handshake with Home Assistant failed") == 2  # the log line and the summary: one attempt
    assert TOKEN not in done.stdout + done.stderr
    assert https_ha.connections == 0 and https_ha.auth_failures == 0


def test_a_direct_sync_does_not_retry_an_untrusted_certificate(https_ha: FakeHomeAssistant, sqlite_url: str) -> None:
    from homeiq_pipeline.watch.direct import DirectSyncs

    direct = DirectSyncs(lambda: ha.HomeAssistantClient(https_ha.url, TOKEN, timeout=10), sqlite_url)
    with pytest.raises(ha.CertificateNotTrusted):  # not TryLater: the watcher stops on it
        direct.launch_sync("home", {})
    assert _synced_rows(sqlite_url) == 0
