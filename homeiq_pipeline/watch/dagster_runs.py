"""Request sync runs from a Dagster webserver through its GraphQL API (plain HTTP, no Dagster
import): launch `sync_home_assistant` for one home, unless a run for it is already waiting."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..names import LOCATION, PARTITION_TAG, REPOSITORY, SYNC_JOB, SYNC_TAG
from ..settings import DEFAULT_DAGSTER_URL
from .loop import Refused, TryLater

# A run in these states has not read Home Assistant yet, so it will see any change made now.
WAITING = ("QUEUED", "NOT_STARTED", "STARTING")
# Answers the webserver gives while the code location (re)loads: the job is back shortly.
LOADING = ("PythonError", "PipelineNotFoundError", "RepositoryLocationNotFound")


class DagsterUnavailable(TryLater):
    """The webserver did not answer (down, restarting, wrong URL): try again later."""


class LaunchRefused(Refused):
    """The webserver answered but would not launch (unknown job or partition, invalid config)."""


WAITING_RUNS_QUERY = """
query WaitingSyncs($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 1) {
    __typename
    ... on Runs { results { runId status } }
    ... on Error { message }
  }
}
"""

PARTITIONS_QUERY = """
query SyncPartitions($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { partitionKeysOrError { ... on PartitionKeys { partitionKeys } } }
    ... on Error { message }
  }
}
"""

LAUNCH_MUTATION = """
mutation LaunchSync($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""


@dataclass
class DagsterRuns:
    """The sync job of one code location on one webserver."""

    url: str = DEFAULT_DAGSTER_URL
    timeout: float = 30.0
    partitions_ttl: float = 60.0  # homes change only when the code location reloads
    _partitions: tuple[float, list[str]] | None = field(default=None, repr=False)

    def answers(self) -> bool:
        """Whether the webserver is up: its `/server_info` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url.rstrip('/')}/server_info", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, http.client.HTTPException):
            return False

    def waiting_sync(self, home: str) -> str | None:
        """The id of a sync run of `home` that has not started reading HA yet, if any: one the
        watcher, sensor or schedule launched (tag homeiq/sync), or one from the UI (only
        dagster/partition)."""
        for key in (SYNC_TAG, PARTITION_TAG):  # a filter's tags must all match: one query each
            run_filter = {"pipelineName": SYNC_JOB, "statuses": list(WAITING), "tags": [{"key": key, "value": home}]}
            body = self._query(WAITING_RUNS_QUERY, filter=run_filter)
            with self._reading():
                answer = body["runsOrError"]
                if answer["__typename"] != "Runs":
                    raise self._error(answer, f"Dagster could not list runs: {answer.get('message')}")
                results = answer["results"]
                if results:
                    return str(results[0]["runId"])
        return None

    def partitions(self) -> list[str]:
        """The job's partition keys (one per home); [] if the job is not partitioned. Remembered
        for `partitions_ttl` seconds: asking costs a trip to the code server."""
        if self._partitions is not None and time.monotonic() - self._partitions[0] < self.partitions_ttl:
            return self._partitions[1]
        keys = self._ask_partitions()
        if keys is None:
            return []  # not remembered: the next launch asks again
        self._partitions = (time.monotonic(), keys)
        return keys

    def _ask_partitions(self) -> list[str] | None:
        """The partition keys, or None if the webserver answered with an error."""
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "pipelineName": SYNC_JOB}
        try:
            body = self._query(PARTITIONS_QUERY, selector=selector)
        except LaunchRefused:
            return None
        with self._reading():
            answer = body["pipelineOrError"]
            if answer["__typename"] != "Pipeline":
                raise self._error(
                    answer, f"Dagster has no job {SYNC_JOB} in code location {LOCATION}: {answer.get('message')}"
                )
            keys = answer.get("partitionKeysOrError") or {}  # not PartitionKeys: the job is not partitioned
            return [str(key) for key in keys.get("partitionKeys") or []]

    def launch_sync(self, home: str, tags: dict[str, str], run_config: dict[str, Any] | None = None) -> str:
        """Launch one sync run of `home` with `tags` (and `run_config`); returns its run id."""
        partitions = self.partitions()
        all_tags = {**tags, SYNC_TAG: home}
        if partitions and home not in partitions:
            self._partitions = None  # the code location may have been reloaded with this home since
            partitions = self.partitions()
        if partitions:
            if home not in partitions:
                raise LaunchRefused(
                    f"{home!r} is not a home of {SYNC_JOB} (its partitions: {', '.join(partitions)}); "
                    "pass --home with one of them"
                )
            all_tags[PARTITION_TAG] = home
        params = {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": SYNC_JOB},
            "runConfigData": run_config or {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
        }
        body = self._query(LAUNCH_MUTATION, params=params)
        with self._reading():
            answer = body["launchRun"]
            if answer["__typename"] == "LaunchRunSuccess":
                return str(answer["run"]["runId"])
            detail = answer.get("message") or "; ".join(e["message"] for e in answer.get("errors") or [])
            raise self._error(answer, f"Dagster refused to launch {SYNC_JOB}: {answer['__typename']}: {detail}")

    @staticmethod
    def _error(answer: dict[str, Any], message: str) -> Exception:
        """A GraphQL error answer: worth asking again while the code location loads, else refused."""
        if answer.get("__typename") in LOADING:
            return DagsterUnavailable(f"{message} (is the code location loading?)")
        return LaunchRefused(message)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """An answer of another shape (a proxy's page, another version's schema) is not one to
        act on: ask again later rather than crash the watcher."""
        try:
            yield
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise DagsterUnavailable(
                f"the Dagster webserver at {self.url} answered something unexpected ({type(exc).__name__}: {exc})"
            ) from None

    def _query(self, query: str, **variables: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise DagsterUnavailable(f"the Dagster webserver at {self.url} answered HTTP {exc.code}") from None
            raise LaunchRefused(f"the Dagster webserver at {self.url} answered HTTP {exc.code}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise DagsterUnavailable(f"the Dagster webserver at {self.url} is unreachable: {exc!r}") from None
        with self._reading():
            if body.get("errors"):
                raise LaunchRefused("; ".join(str(e.get("message")) for e in body["errors"]))
            return dict(body["data"])
