"""The access tokens never leak: a real Dagster deployment (webserver + daemon) mirrors four homes
from a homes.yaml, each with its own distinctive token: one that syncs, one whose token HA rejects,
one behind TLS with a certificate nobody configured trust for, and one that is down. After their
runs, no token appears anywhere on disk (Dagster's run and event-log storage, compute logs, the
mirror database, every other file of the deployment), in the processes' stdout and stderr, in
the runs' logs and configuration read over GraphQL, or on the resources page, which names the
environment variable instead."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trustme
import yaml

from ..fake_ha import FakeHomeAssistant
from ..helpers import QUICK_TRIES, free_port, launched, sync_runs, wait_for

pytestmark = pytest.mark.e2e

# Distinctive, so a hit cannot be a coincidence; one per home, each in its own variable.
TOKENS = {
    "good": "tok3n-GOOD-b1f2c3d4e5f60718293a4b5c6d7e8f90",
    "badtoken": "tok3n-REJECTED-0a1b2c3d4e5f60718293a4b5c6d7e8",
    "tls": "tok3n-TLS-99aa88bb77cc66dd55ee44ff33001122",
    "down": "tok3n-DOWN-5544332211ffeeddccbbaa0099887766",
}
ENV = {home: f"HOMEIQ_TEST_TOKEN_{home.upper()}" for home in TOKENS}
LOCATION = {"repositoryLocationName": "homeiq_pipeline", "repositoryName": "__repository__"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("secrets")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    servers = {
        "good": FakeHomeAssistant(token=TOKENS["good"], port=free_port()).start(),
        "badtoken": FakeHomeAssistant(token="what-ha-really-expects", port=free_port()).start(),
        "tls": FakeHomeAssistant(token=TOKENS["tls"], port=free_port(), ssl_context=context).start(),
    }
    urls = {home: server.url for home, server in servers.items()}
    urls["down"] = f"http://127.0.0.1:{free_port()}"
    homes = tmp / "homes.yaml"
    homes.write_text(
        yaml.safe_dump({"homes": [{"name": home, "url": urls[home], "token_env": ENV[home]} for home in TOKENS]}),
        encoding="utf-8",
    )
    env = {"HOMEIQ_HOMES_FILE": str(homes), **{ENV[home]: token for home, token in TOKENS.items()}}
    try:
        with launched(tmp, extra_env=env, check=False) as (url, log):  # its broken homes must reach Dagster
            yield SimpleNamespace(url=url, log=log, tmp=tmp, servers=servers)
    finally:
        for server in servers.values():
            server.stop()


def graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    from ..helpers import graphql as ask

    return ask(url, query, **variables)


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

RUN_LOGS = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level }
        ... on ExecutionStepFailureEvent { error { message } }
        ... on ExecutionStepUpForRetryEvent { error { message cause { message } } }
      }
    }
  }
  runOrError(runId: $runId) { ... on Run { status runConfigYaml tags { key value } } }
}
"""

RESOURCE = """
query Resource($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename
    ... on ResourceDetails { name configFields { name } configuredValues { key value type } }
  }
}
"""


def launch(url: str, home: str) -> str:
    params = {
        "selector": {**LOCATION, "jobName": "sync_home_assistant"},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": home}]},
        "runConfigData": QUICK_TRIES,  # the down home fails in about a second, not a minute
    }
    answer = graphql(url, LAUNCH, params=params)["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


def run_logs(url: str, run_id: str) -> tuple[str, str, list[str]]:
    data = graphql(url, RUN_LOGS, runId=run_id)
    messages = [
        f"{event['__typename']}: {event.get('message') or ''} {json.dumps(event.get('error') or '')}"
        for event in data["logsForRun"]["events"]
    ]
    return data["runOrError"]["status"], json.dumps(data), messages


def failed_attempt(url: str, run_id: str) -> list[str] | None:
    """The run's messages once its sync step has failed at least once (the "down" home is retried)."""
    status, _, messages = run_logs(url, run_id)
    if status in ("FAILURE", "SUCCESS") or any(m.startswith(("ExecutionStepFailureEvent", "ExecutionStepUpForRetryEvent")) for m in messages):
        return messages
    return None


def files_containing(root: Path, secrets: dict[str, str]) -> dict[str, list[str]]:
    """Which files under `root` hold which secret (raw bytes, UTF-8 and UTF-16)."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # a SQLite -wal/-shm file gone since the listing: its pages are in the .db, read too
        for home, secret in secrets.items():
            if any(form in data for form in (secret.encode(), secret.encode("utf-16-le"))):
                found.setdefault(home, []).append(str(path.relative_to(root)))
    return found


def test_no_token_appears_in_storage_logs_output_or_the_ui(deployment: SimpleNamespace) -> None:
    url = deployment.url
    # The sensor syncs the good home on first contact; the others are launched by hand (the
    # sensor skips them: unreachable, token rejected, certificate not trusted).
    wait_for("the good home's first sync", lambda: any(
        r["status"] == "SUCCESS" and r["tags"].get("dagster/partition") == "good" for r in sync_runs(url)), timeout=180)
    launched_runs = {home: launch(url, home) for home in ("badtoken", "tls", "down")}
    messages = {home: wait_for(f"the {home} run to fail", lambda r=run_id: failed_attempt(url, r), timeout=180)
                for home, run_id in launched_runs.items()}
    wait_for("the bad-token and TLS runs to finish", lambda: all(
        run_logs(url, launched_runs[home])[0] == "FAILURE" for home in ("badtoken", "tls")), timeout=120)

    # The failures name their causes (so the logs searched below are the real ones).
    joined = {home: "\n".join(lines) for home, lines in messages.items()}
    assert "rejected the access token" in joined["badtoken"]
    assert "TLS handshake with Home Assistant failed" in joined["tls"]
    assert "cannot reach Home Assistant" in joined["down"]
    assert deployment.servers["badtoken"].auth_failures >= 1  # the rejected token really was sent

    # 1. Everything on disk: DAGSTER_HOME (runs, event logs, schedules, compute logs), the mirror, the homes file.
    assert files_containing(deployment.tmp, TOKENS) == {}
    assert any((deployment.tmp / "dagster").rglob("*.db")), "no Dagster storage was searched"
    assert any((deployment.tmp / "dagster" / "storage").rglob("compute_logs/*")), "no compute logs were searched"
    assert (deployment.tmp / "mirror.db").is_file()
    assert files_containing(deployment.tmp, {"partition": "badtoken"}), "the event logs were not searched"
    # 2. The webserver's, daemon's and code server's stdout and stderr (one log file).
    output = deployment.log.read_text(errors="replace")
    assert output and not [home for home, token in TOKENS.items() if token in output]
    # 3. Over GraphQL: every sync run's logs, run config and tags.
    for run in sync_runs(url):
        _, text, _ = run_logs(url, run["runId"])
        assert not [home for home, token in TOKENS.items() if token in text], run["runId"]
    # 4. The resources page: the token field shows the variable's name, never its value.
    details = graphql(url, RESOURCE, selector={**LOCATION, "resourceName": "home_assistant"})["topLevelResourceDetailsOrError"]
    assert details["__typename"] == "ResourceDetails", details
    page = json.dumps(details)
    assert not [home for home, token in TOKENS.items() if token in page]
    for variable in ENV.values():
        assert variable in page, (variable, page[:2000])
