"""The websocket client against a server speaking HA's protocol: handshake, ids, frames, errors."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from homeiq_pipeline import homeassistant as ha

from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://ha.local:8123", "ws://ha.local:8123/api/websocket"),
        ("https://ha.local:8123/", "wss://ha.local:8123/api/websocket"),
        ("ws://ha.local:8123/api/websocket", "ws://ha.local:8123/api/websocket"),
        ("wss://example.org/ha/api/websocket/", "wss://example.org/ha/api/websocket"),
        ("http://ha.local/subpath", "ws://ha.local/subpath/api/websocket"),
    ],
)
def test_accepts_http_and_websocket_urls(given: str, expected: str) -> None:
    assert ha.websocket_url(given) == expected


@pytest.mark.parametrize("bad", ["ha.local:8123", "ftp://ha.local", "http://"])
def test_rejects_urls_that_are_not_home_assistant_urls(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Home Assistant URL"):
        ha.websocket_url(bad)


def test_authenticates_and_learns_the_version(fake_ha: FakeHomeAssistant) -> None:
    with ha.HomeAssistantClient(fake_ha.url, TOKEN) as client:
        assert client.ha_version == fake_ha.ha_version
        assert client.command("get_config")["version"] == fake_ha.results["get_config"]["version"]
        assert client.ping() >= 0


def test_ids_strictly_increase_so_many_commands_all_succeed(fake_ha: FakeHomeAssistant) -> None:
    # The server answers id_reuse to any id not above the last one, as HA does.
    with ha.HomeAssistantClient(fake_ha.url, TOKEN) as client:
        versions = {client.command("get_config")["version"] for _ in range(20)}
    assert versions == {fake_ha.results["get_config"]["version"]}
    assert fake_ha.commands_seen.count("get_config") == 20


@pytest.mark.parametrize("coalesce", [True, False])
def test_plain_and_coalesced_array_frames_are_both_understood(coalesce: bool) -> None:
    with FakeHomeAssistant(token=TOKEN, coalesce=coalesce) as server:
        with ha.HomeAssistantClient(server.url, TOKEN) as client:
            devices = client.command("config/device_registry/list")
    assert devices == server.results["config/device_registry/list"]


def test_bad_token_fails_with_has_own_message_and_never_shows_the_token(
    fake_ha: FakeHomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-secret-token-that-must-not-leak"
    caplog.set_level(logging.DEBUG)
    client = ha.HomeAssistantClient(fake_ha.url, wrong)
    with pytest.raises(ha.AuthenticationFailed) as failure:
        client.connect()
    assert "Invalid access token or password" in str(failure.value)
    assert wrong not in str(failure.value) and wrong not in repr(failure.value)
    assert wrong not in repr(client)
    client_logs = "".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets."))
    assert wrong not in client_logs
    assert fake_ha.auth_failures == 1  # one attempt, no retry loop


def test_command_error_carries_has_code_and_message(fake_ha: FakeHomeAssistant) -> None:
    fake_ha.faults.fail["config/area_registry/list"] = ("unauthorized", "Unauthorized")
    with ha.HomeAssistantClient(fake_ha.url, TOKEN) as client:
        with pytest.raises(ha.CommandFailed) as failure:
            client.command("config/area_registry/list")
    assert (failure.value.code, failure.value.message) == ("unauthorized", "Unauthorized")
    assert "config/area_registry/list" in str(failure.value)


def test_a_command_ha_does_not_have_is_a_clear_error(fake_ha: FakeHomeAssistant) -> None:
    # The old design asked for config_entries/list, which does not exist.
    with ha.HomeAssistantClient(fake_ha.url, TOKEN) as client:
        with pytest.raises(ha.CommandFailed, match="unknown_command"):
            client.command("config_entries/list")


def test_a_server_that_never_answers_times_out_within_the_timeout(fake_ha: FakeHomeAssistant) -> None:
    fake_ha.faults.hang.add("get_states")
    with ha.HomeAssistantClient(fake_ha.url, TOKEN, timeout=10) as client:  # connecting may be slow
        client.timeout = 0.5  # the command may not
        started = time.monotonic()
        with pytest.raises(ha.RequestTimeout, match="did not answer within 0.5 s"):
            client.command("get_states")
    assert time.monotonic() - started < 5  # the command's 0.5 s, not the connection's 10


def test_unreachable_home_assistant_is_cannot_connect() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ha.CannotConnect, match="cannot reach Home Assistant") as failed:
        ha.HomeAssistantClient(f"http://127.0.0.1:{port}", TOKEN, timeout=2).connect()
    assert isinstance(failed.value.__cause__, ConnectionRefusedError)  # the cause is kept, not dropped
    assert failed.value.cause is ha.Cause.UNAVAILABLE and failed.value.cause.retry_can_help


@pytest.mark.parametrize(
    ("error", "cause", "retry_can_help", "settings_must_change"),
    [
        (ha.CannotConnect, ha.Cause.UNAVAILABLE, True, False),
        (ha.RequestTimeout, ha.Cause.UNAVAILABLE, True, False),
        (ha.HomeAssistantStarting, ha.Cause.UNAVAILABLE, True, False),
        (ha.AuthenticationFailed, ha.Cause.TOKEN_REJECTED, False, True),
        (ha.CertificateNotTrusted, ha.Cause.CERTIFICATE_NOT_TRUSTED, False, True),
        (ha.CommandFailed, ha.Cause.UNUSABLE_ANSWER, False, False),
        (ha.FrameTooLarge, ha.Cause.UNUSABLE_ANSWER, False, False),
        (ha.ProtocolError, ha.Cause.UNUSABLE_ANSWER, False, False),
    ],
)
def test_every_error_says_whether_a_retry_can_help_or_a_person_must_act(
    error: type[ha.HomeAssistantError], cause: ha.Cause, retry_can_help: bool, settings_must_change: bool
) -> None:
    """The one classification the CLI (exit codes), the sync asset (retries) and the watcher
    (backoff or stop) act on; each maps every cause."""
    from homeiq_pipeline.cli.exits import FOR_CAUSE

    assert error.cause is cause
    assert (cause.retry_can_help, cause.settings_must_change) == (retry_can_help, settings_must_change)
    assert set(FOR_CAUSE) == set(ha.Cause)


def test_a_wrong_path_is_named(fake_ha: FakeHomeAssistant) -> None:
    with pytest.raises(ha.CannotConnect, match="answered HTTP 404"):
        ha.HomeAssistantClient(f"ws://127.0.0.1:{fake_ha.port}/not/websocket", TOKEN).connect()


def test_a_dropped_connection_is_cannot_connect(fake_ha: FakeHomeAssistant) -> None:
    fake_ha.faults.drop.add("get_states")
    with ha.HomeAssistantClient(fake_ha.url, TOKEN) as client:
        with pytest.raises(ha.CannotConnect, match="closed the connection|connection to Home Assistant was lost"):
            client.command("get_states")


def test_garbage_is_a_protocol_error(fake_ha: FakeHomeAssistant) -> None:
    fake_ha.faults.raw["get_states"] = "<html>this is not json"
    with ha.HomeAssistantClient(fake_ha.url, TOKEN) as client:
        with pytest.raises(ha.ProtocolError, match="not JSON"):
            client.command("get_states")


def test_an_over_limit_frame_is_refused_by_its_header(fake_ha: FakeHomeAssistant) -> None:
    states_size = len(json.dumps(fake_ha.results["get_states"]))
    with ha.HomeAssistantClient(fake_ha.url, TOKEN, max_frame_size=states_size // 2) as client:
        client.command("get_config")  # small frames still pass
        with pytest.raises(ha.FrameTooLarge, match="more than the configured maximum"):
            client.command("get_states")


def test_default_frame_limit_is_generous() -> None:
    assert ha.DEFAULT_MAX_FRAME_SIZE >= 64 * 1024 * 1024


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_ha(self_signed: tuple[Path, Path]) -> FakeHomeAssistant:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    server = FakeHomeAssistant(token=TOKEN, ssl_context=context).start()
    yield server
    server.stop()


def test_tls_is_verified_by_default(tls_ha: FakeHomeAssistant) -> None:
    assert tls_ha.url.startswith("https://")
    with pytest.raises(ha.CannotConnect, match="TLS handshake .* failed"):
        ha.HomeAssistantClient(tls_ha.url, TOKEN).connect()


def test_a_ca_bundle_makes_a_self_signed_certificate_trusted(
    tls_ha: FakeHomeAssistant, self_signed: tuple[Path, Path]
) -> None:
    with ha.HomeAssistantClient(tls_ha.url, TOKEN, ca_bundle=str(self_signed[0])) as client:
        assert client.command("get_config")["state"] == "RUNNING"


def test_disabling_verification_works_but_warns(tls_ha: FakeHomeAssistant, caplog: pytest.LogCaptureFixture) -> None:
    with ha.HomeAssistantClient(tls_ha.url, TOKEN, verify_tls=False) as client:
        assert client.command("get_config")["state"] == "RUNNING"
    assert "TLS certificate verification is DISABLED" in caplog.text
    assert TOKEN not in caplog.text
