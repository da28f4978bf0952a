"""Soak: 300 syncs against the protocol server, with seeded random registry changes between them
(adds, renames, removals, area moves, disables, returns, state changes).

After every sync the live rows equal the server's registries and states exactly, and every key
the server ever listed is still stored (removed ones marked, never dropped).

"The database file stops growing once the data stops growing", precisely: every key of a fixed
pool (the recording plus spare entries) is added, removed and returns at random, so after a
warm-up in which every pool key has been stored once, the mirrored data has a fixed number of rows
of about the same sizes. From then on, for the remaining (at least 150) syncs: (1) the pages used by the mirrored tables
and their indexes (SQLite's dbstat) stay within 10% (+2 pages) of their size at the end of the
warm-up, and (2) the file grows by no more than what the per-sync logs (`ha_sync_runs`,
`ha_registry_changes`, which gain rows by design) gained, plus that same 10% (+2 pages): no
leaked pages, no growing free list. (File size = the database's pages, i.e. the file once the
write-ahead log is checkpointed: the file on disk lags the log.) The write-ahead log stays below SQLite's auto-checkpoint
size plus one sync's writes.
"""

from __future__ import annotations

import copy
import random
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from homeiq_pipeline import storage
from homeiq_pipeline.homeassistant import LIST_COMMANDS
from homeiq_pipeline.storage.schema import MIRRORED_TABLES

from .fake_ha import FakeHomeAssistant
from .helpers import sync
from .mirror_checks import BY_FIELD, all_rows, assert_mirror_equals_ha

SYNCS = 300
WARM_UP = 100
SEED = 20261127
DEVICES, ENTITIES, STATES = "config/device_registry/list", "config/entity_registry/list", "get_states"
AREAS, LABELS, FLOORS = "config/area_registry/list", "config/label_registry/list", "config/floor_registry/list"
KEYS = {DEVICES: "id", ENTITIES: "id", AREAS: "area_id", LABELS: "label_id", FLOORS: "floor_id", STATES: "entity_id"}
LOG_TABLES = ("ha_sync_runs", "ha_registry_changes")
SPEC = {command: BY_FIELD[field] for field, command in LIST_COMMANDS.items()}  # command -> its table


class RandomHome:
    """The server's registries plus the entries it does not list right now (spares never listed
    yet, and removed ones that may return). Every change keeps the pool of keys fixed."""

    def __init__(self, server: FakeHomeAssistant, rng: random.Random) -> None:
        self.server, self.rng = server, rng
        self.results = server.results
        self.absent: dict[str, list[dict[str, Any]]] = {command: [] for command in KEYS}
        self.ever_listed: dict[str, set[str]] = {c: {e[KEYS[c]] for e in self.results[c]} for c in KEYS}
        self.done: Counter[str] = Counter()
        for command, count in ((DEVICES, 15), (ENTITIES, 30), (AREAS, 3), (LABELS, 2), (FLOORS, 1)):
            for n in range(count):
                spare = copy.deepcopy(self.results[command][n % len(self.results[command])])
                spare[KEYS[command]] = f"soak_spare_{command.split('/')[1]}_{n}"
                if command == ENTITIES:
                    spare["entity_id"] = f"sensor.soak_spare_{n}"
                    spare["unique_id"] = f"soak-spare-{n}"
                self.absent[command].append(spare)

    def entries(self, command: str) -> list[dict[str, Any]]:
        return self.results[command]

    def change(self) -> None:
        kind = self.rng.choice(("add", "add", "remove", "remove", "rename", "area_move", "disable", "state"))
        command = self.rng.choice((DEVICES, ENTITIES, ENTITIES, AREAS, LABELS, FLOORS))
        listed, key = self.entries(command), KEYS[command]
        if kind == "add" and self.absent[command]:
            # Spares never listed go first, so the pool of keys is complete after the warm-up.
            fresh = [i for i, e in enumerate(self.absent[command]) if e[key] not in self.ever_listed[command]]
            entry = self.absent[command].pop(fresh[0] if fresh else self.rng.randrange(len(self.absent[command])))
            listed.insert(self.rng.randrange(len(listed) + 1), entry)
            self.done["return" if entry[key] in self.ever_listed[command] else "add"] += 1
            self.ever_listed[command].add(entry[key])
            if command == ENTITIES:
                self._set_state(entry["entity_id"], "on")
        elif kind == "remove" and len(listed) > 1:
            entry = listed.pop(self.rng.randrange(len(listed)))
            self.absent[command].append(entry)
            self.done["remove"] += 1
            if command == ENTITIES:
                self.results[STATES][:] = [s for s in self.results[STATES] if s["entity_id"] != entry["entity_id"]]
        elif kind == "rename" and command == ENTITIES:
            entry = self.rng.choice(listed)
            self._rename_entity(entry, f"{entry['entity_id'].split('.')[0]}.soak_{entry['id'][:8]}_{self.rng.randrange(5)}")
            self.done["rename"] += 1
        elif kind == "rename":
            entry = self.rng.choice(listed)
            entry["name_by_user" if command == DEVICES else "name"] = self.rng.choice(("Kitchen", "Küche 台所", "Living room", "Hall"))
            self.done["rename"] += 1
        elif kind == "area_move" and command in (DEVICES, ENTITIES):
            entry = self.rng.choice(listed)
            entry["area_id"] = self.rng.choice([a["area_id"] for a in self.results[AREAS]] + [None])
            self.done["area_move"] += 1
        elif kind == "disable" and command in (DEVICES, ENTITIES):
            entry = self.rng.choice(listed)
            entry["disabled_by"] = None if entry["disabled_by"] else "user"
            self.done["disable" if entry["disabled_by"] else "enable"] += 1
        elif kind == "state" and self.results[STATES]:
            state = self.rng.choice(self.results[STATES])
            state["state"] = self.rng.choice(("on", "off", "unavailable", "unknown", "21.5"))
            self.done["state"] += 1

    def _rename_entity(self, entry: dict[str, Any], new_id: str) -> None:
        if any(e["entity_id"] == new_id for e in self.entries(ENTITIES)) or any(e["entity_id"] == new_id for e in self.absent[ENTITIES]):
            return
        old_id, entry["entity_id"] = entry["entity_id"], new_id
        for state in self.results[STATES]:
            if state["entity_id"] == old_id:
                state["entity_id"] = new_id
        self.ever_listed[STATES].add(new_id)

    def _set_state(self, entity_id: str, value: str) -> None:
        if not any(s["entity_id"] == entity_id for s in self.results[STATES]):
            template = copy.deepcopy(self.results[STATES][0])
            self.results[STATES].append({**template, "entity_id": entity_id, "state": value})
            self.ever_listed[STATES].add(entity_id)

    def pool_complete(self) -> bool:
        return all(not any(e[KEYS[c]] not in self.ever_listed[c] for e in self.absent[c]) for c in KEYS)


def pages_by_table(db_path: Path) -> tuple[dict[str, int], int, int, int]:
    """Pages per table (its indexes included), pages on the free list, the page size, and the
    database's size in pages (what the file holds once the write-ahead log is checkpointed)."""
    connection = sqlite3.connect(db_path)
    try:
        owner = dict(connection.execute("SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')"))
        pages: Counter[str] = Counter()
        for name, count in connection.execute("SELECT name, COUNT(*) FROM dbstat GROUP BY name"):
            pages[owner.get(name, name)] += count
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
        return dict(pages), free, size, connection.execute("PRAGMA page_count").fetchone()[0]
    finally:
        connection.close()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = storage.open_database(sqlite_url)
    yield engine
    engine.dispose()


def test_300_syncs_with_random_changes_mirror_exactly_and_the_file_stops_growing(
    fake_ha: FakeHomeAssistant, sqlite_engine: sa.Engine, sqlite_url: str
) -> None:
    """SQLite only: the file size and page counts are SQLite's (the PostgreSQL mirror is checked
    for exactness by the fast tier)."""
    engine, db_path = sqlite_engine, Path(sa.make_url(sqlite_url).database or "")
    wal_path = db_path.with_name(db_path.name + "-wal")
    home = RandomHome(fake_ha, random.Random(SEED))
    mirrored = {spec.name for spec in MIRRORED_TABLES}
    baseline: tuple[dict[str, int], int, int, int] | None = None
    largest_wal = 0
    synced: dict[str, set[str]] = {command: set() for command in KEYS}
    for number in range(1, SYNCS + 1):
        with fake_ha.lock:
            for _ in range(home.rng.randint(1, 4)):
                home.change()
        result = sync(fake_ha, engine)
        assert_mirror_equals_ha(engine, fake_ha.results)
        for command, key in KEYS.items():  # nothing ever synced is dropped; removed ones stay marked
            synced[command] |= {entry[key] for entry in fake_ha.results[command]}
            stored = all_rows(engine, SPEC[command])
            assert {row[key] for row in stored} == synced[command], (number, command)
            assert result.counts[SPEC[command].name].live == len(fake_ha.results[command])

        if baseline is None and number >= WARM_UP and home.pool_complete():
            baseline = pages_by_table(db_path)
            warm_up_end = number
        elif baseline is not None:
            pages, free, page_size, page_count = pages_by_table(db_path)
            base_pages, _, _, base_count = baseline
            base_mirror = sum(base_pages[t] for t in mirrored)
            mirror_pages = sum(pages[t] for t in mirrored)
            slack = int(0.1 * base_mirror) + 2
            assert mirror_pages <= base_mirror + slack, (number, pages, base_pages)
            log_growth = sum(pages.get(t, 0) - base_pages.get(t, 0) for t in LOG_TABLES)
            growth = (page_count - base_count) * page_size
            assert growth <= (log_growth + slack) * page_size, (number, growth, log_growth, free)
            largest_wal = max(largest_wal, wal_path.stat().st_size if wal_path.exists() else 0)
            last = (mirror_pages, base_mirror, log_growth, growth, free, page_size)

    assert baseline is not None, "the pool of keys was never complete: the soak did not warm up"
    assert SYNCS - warm_up_end >= 150
    # Every kind of change happened many times.
    assert all(home.done[kind] >= 10 for kind in ("add", "return", "remove", "rename", "area_move", "disable", "state")), home.done
    mirror_pages, base_mirror, log_growth, growth, free, page_size = last
    assert (1000 + 64) * page_size >= largest_wal  # auto-checkpoint at 1,000 pages, plus one sync's writes
    print(f"changes {dict(home.done)}; warm-up ended at sync {warm_up_end}; mirrored tables {base_mirror} -> "
          f"{mirror_pages} pages; file grew {growth} bytes over {SYNCS - warm_up_end} syncs, the logs "
          f"{log_growth} pages of {page_size} bytes; free list {free} pages; largest WAL {largest_wal} bytes")
