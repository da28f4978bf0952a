"""The compose file's `production` profile (PostgreSQL for the mirror and for Dagster's storage),
checked as files: no registry is reachable here to pull postgres:15, so the profile is not run
live. What it sets up is run for real in tests/e2e/test_dagster_on_postgres.py (Debian's
PostgreSQL 15, the same dagster.postgres.yaml, the same URL forms)."""

import re
from pathlib import Path

import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def production_settings() -> dict[str, str]:
    """The commented-out production lines of .env.example, as the user uncomments them."""
    lines = (DOCKER / ".env.example").read_text().splitlines()
    found = dict(line[1:].split("=", 1) for line in lines if re.match(r"#[A-Z_]+=", line))
    assert found["COMPOSE_PROFILES"] == "production"
    return found


def test_postgres_runs_only_in_the_production_profile_on_loopback_with_a_health_check() -> None:
    services = compose()["services"]
    postgres = services["postgres"]
    assert postgres["profiles"] == ["production"]
    assert all(str(port).startswith("127.0.0.1:") for port in postgres["ports"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "postgres:/var/lib/postgresql/data" in postgres["volumes"]  # a named volume: data survives `down`
    assert "postgres" in compose()["volumes"]
    # The default services never need it (compose refuses a depends_on on a disabled profile).
    assert all("depends_on" not in service for name, service in services.items() if "profiles" not in service)


def test_the_settings_point_both_databases_at_the_postgres_service() -> None:
    settings = production_settings()
    postgres = compose()["services"]["postgres"]
    environment = postgres["environment"]
    mirror = sa.make_url(settings["HOMEIQ_DB_URL"])
    dagster = sa.make_url(settings["DAGSTER_POSTGRES_URL"])
    assert mirror.drivername == "postgresql+psycopg"  # the mirror's driver
    assert dagster.drivername == "postgresql+psycopg2"  # dagster-postgres fails on psycopg 3 (NOTIFY)
    for url in (mirror, dagster):
        assert (url.host, url.port, url.username) == ("postgres", 5432, environment["POSTGRES_USER"])
        assert url.password == settings["POSTGRES_PASSWORD"]
    assert mirror.database == environment["POSTGRES_DB"]
    # Dagster's database is another one (both use a table alembic_version), made on first start.
    mount = next(volume for volume in postgres["volumes"] if "docker-entrypoint-initdb.d" in volume)
    init_sql = (DOCKER / mount.split(":")[0]).read_text()
    assert dagster.database != mirror.database
    assert re.search(rf"CREATE DATABASE {dagster.database}\b", init_sql)


def test_the_webserver_and_daemon_get_the_postgres_instance_yaml() -> None:
    settings = production_settings()
    shared = compose()["x-homeiq"]["environment"]
    assert shared["DAGSTER_POSTGRES_URL"] == "${DAGSTER_POSTGRES_URL:-}"
    assert shared["HOMEIQ_DAGSTER_YAML"] == "${HOMEIQ_DAGSTER_YAML:-}"
    # The image has the file where the setting says, and the entry point copies that one.
    in_image = Path(settings["HOMEIQ_DAGSTER_YAML"])
    dockerfile = (DOCKER / "Dockerfile").read_text()
    copy = next(line for line in dockerfile.splitlines() if line.startswith("COPY") and "dagster.postgres.yaml" in line)
    assert copy.split()[-1].rstrip("/") == str(in_image.parent)
    assert "!docker/dagster.postgres.yaml" in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert 'cp "${HOMEIQ_DAGSTER_YAML:-/app/dagster.yaml}"' in (DOCKER / "entrypoint.sh").read_text()


def test_the_postgres_instance_yaml_differs_from_dagster_yaml_only_in_its_storage() -> None:
    default = yaml.safe_load((ROOT / "homeiq_pipeline" / "dagster.yaml").read_text())
    on_postgres = yaml.safe_load((DOCKER / "dagster.postgres.yaml").read_text())
    assert on_postgres.pop("storage") == {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}}
    assert "storage" not in default
    assert on_postgres == default  # run queue, concurrency limits, telemetry: kept in step
