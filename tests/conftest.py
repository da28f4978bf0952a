"""Shared fixtures: a fake HA serving the recording of a real HA 2025.4.4, and a fresh mirror."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from homeiq_pipeline import homeassistant as ha
from homeiq_pipeline import storage
from homeiq_pipeline.demo.server import FakeHomeAssistant

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def fake_ha() -> Iterator[FakeHomeAssistant]:
    with FakeHomeAssistant(token=TOKEN) as server:
        yield server


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mirror.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = storage.open_database(db_url)
    yield engine
    engine.dispose()


def fetch(server: FakeHomeAssistant, **client_options: object) -> ha.Snapshot:
    with ha.HomeAssistantClient(server.url, TOKEN, **client_options) as client:  # type: ignore[arg-type]
        return ha.fetch_snapshot(client)


def sync(server: FakeHomeAssistant, engine: sa.Engine, **options: object) -> storage.SyncResult:
    return storage.sync_snapshot(engine, fetch(server), **options)  # type: ignore[arg-type]


def database_fingerprint(db_url: str) -> str:
    """A hash of the SQLite files' bytes (main file and write-ahead log)."""
    path = Path(sa.make_url(db_url).database or "")
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + "-wal")):
        digest.update(part.read_bytes() if part.exists() else b"<absent>")
    return digest.hexdigest()
