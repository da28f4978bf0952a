"""InfluxDB 2 (or anything that speaks its write API), for the optional history."""

import dagster as dg
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from pydantic import Field
from urllib3.exceptions import HTTPError

from ...settings import current

BATCH = 5_000  # points per request


class InfluxDBUnavailable(Exception):
    """InfluxDB could not be reached or timed out: worth retrying."""


class InfluxDBRefused(Exception):
    """InfluxDB answered with an error a retry will not fix (bad token, missing bucket, bad data)."""


class InfluxDBResource(dg.ConfigurableResource):
    url: str = Field(description="e.g. http://influxdb:8086 (INFLUXDB_URL)")
    token: str = Field(description="API token (INFLUXDB_TOKEN); always from the environment", repr=False)
    org: str = Field(description="organization (INFLUXDB_ORG)")
    bucket: str = Field(description="bucket (INFLUXDB_BUCKET)")
    verify_ssl: bool = Field(default=True, description="verify InfluxDB's TLS certificate")
    ssl_ca_cert: str | None = Field(default=None, description="CA file for a self-signed certificate")
    timeout_seconds: float = Field(default=30.0, description="seconds per request")

    def write(self, lines: list[str]) -> int:
        """Write line-protocol lines (millisecond times), in batches; return how many.
        Raises InfluxDBUnavailable or InfluxDBRefused."""
        client = InfluxDBClient(
            url=self.url,
            token=self.token,
            org=self.org,
            timeout=int(self.timeout_seconds * 1000),
            verify_ssl=self.verify_ssl,
            ssl_ca_cert=self.ssl_ca_cert,
            retries=False,
        )
        try:
            with client.write_api(write_options=SYNCHRONOUS) as writer:
                for start in range(0, len(lines), BATCH):
                    writer.write(
                        bucket=self.bucket,
                        org=self.org,
                        record=lines[start : start + BATCH],
                        write_precision=WritePrecision.MS,
                    )
        except ApiException as exc:
            raise InfluxDBRefused(_explain(exc, self.bucket, self.url)) from None
        except (HTTPError, OSError) as exc:
            raise InfluxDBUnavailable(f"InfluxDB at {self.url} is unreachable: {type(exc).__name__}: {exc}") from None
        finally:
            client.close()
        return len(lines)


def _explain(exc: ApiException, bucket: str, url: str) -> str:
    reason = {
        401: "rejected the token (check INFLUXDB_TOKEN)",
        403: "does not let this token write",
        404: f"has no bucket {bucket!r} (check INFLUXDB_BUCKET and INFLUXDB_ORG)",
    }.get(exc.status, "refused the write")
    return f"InfluxDB at {url} {reason}: HTTP {exc.status} {(exc.body or exc.reason or '')!s:.300}"


@dg.definitions
def resources() -> dg.Definitions:
    settings = current()
    if not settings.history_enabled:
        return dg.Definitions()  # nothing uses it: the history asset is left out too
    return dg.Definitions(
        resources={
            "influxdb": InfluxDBResource(
                # Unset, the URL is looked up at run time, so the failure names the variable.
                url=settings.influxdb_url or dg.EnvVar("INFLUXDB_URL"),
                token=dg.EnvVar("INFLUXDB_TOKEN"),
                org=settings.influxdb_org,
                bucket=settings.influxdb_bucket,
                verify_ssl=settings.influxdb_verify_ssl,
                ssl_ca_cert=settings.influxdb_ca_bundle,
            )
        }
    )
