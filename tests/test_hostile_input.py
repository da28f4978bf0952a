"""Hostile and odd input.

Payloads (property-based, `hypothesis`): registry and state entries with missing fields, unknown
fields, nulls, wrong types, very long and non-ASCII strings, odd numbers, duplicate and bad keys.
Each snapshot is either stored faithfully (every live row's `raw` equals the entry, every column
equals the entry's field) or refused with a `StorageError` naming the table and the field or key,
and a refusal leaves every table exactly as it was. What HA's own contract allows (fields missing
or added, nulls, any string in a string field, any JSON in a JSON field) is always stored.

Servers (`tests/hostile_servers.py`): oversized frames, silence, garbage, a close in the middle of a
frame, non-JSON numbers and broken Unicode: each ends in its typed error, naming the cause, within
the client's timeout (a generous bound only catches a hang).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeiq_pipeline import homeassistant as ha
from homeiq_pipeline import storage
from homeiq_pipeline.demo.server import load_recording
from homeiq_pipeline.homeassistant import LIST_COMMANDS, Snapshot
from homeiq_pipeline.storage.schema import MIRRORED_TABLES, MirroredTable

from . import hostile_servers as hs
from .fake_ha import FakeHomeAssistant
from .helpers import TOKEN
from .mirror_checks import all_rows, assert_mirror_equals_ha

# Deterministic in CI (derandomize: the same examples every run); HOMEIQ_HYPOTHESIS_EXAMPLES
# raises the count for a longer local hunt.
settings.register_profile(
    "homeiq",
    max_examples=int(os.environ.get("HOMEIQ_HYPOTHESIS_EXAMPLES") or 20),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("homeiq")
RECORDED = load_recording()["results"]
COMMAND = {spec.name: LIST_COMMANDS[spec.snapshot_field] for spec in MIRRORED_TABLES}

# -- values -----------------------------------------------------------------------------------------

NON_ASCII = st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=("Cs",))
LONG = st.sampled_from(["Ωé漢🏠", "x", "\u202e", "🏠\u200d"]).flatmap(
    lambda unit: st.integers(1_000, 100_000).map(lambda n: (unit * n)[:n])
)


def texts(*, nul: bool) -> st.SearchStrategy[str]:
    plain = st.text(max_size=20) if nul else st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=20)
    return st.one_of(plain, st.text(NON_ASCII, min_size=1, max_size=40), LONG)


# What a server can put on the wire but HA never does: NaN and Infinity (not JSON) and unpaired
# UTF-16 surrogates (valid JSON escapes that decode to strings UTF-8 cannot hold).
NOT_JSON = st.sampled_from([float("nan"), float("inf"), float("-inf"), "\ud800", "a\udfffb"])


def _json_values(*, nul: bool, wire: bool = False) -> st.SearchStrategy[Any]:
    """Anything a JSON document can carry; `wire`: also what only a broken server sends."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30]),
        st.floats(allow_nan=False, allow_infinity=False), texts(nul=nul), *([NOT_JSON] if wire else []),
    )
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(nul=nul), inner, max_size=3), max_leaves=6
    )


def _is_json(kind: sa.types.TypeEngine) -> bool:
    return isinstance(kind, sa.JSON)


def _is_text(kind: sa.types.TypeEngine) -> bool:
    return isinstance(kind, sa.String)


# -- snapshots --------------------------------------------------------------------------------------

TOLERATED = ("missing field", "unknown field", "null", "any string", "any JSON")
HOSTILE = (*TOLERATED, "wrong type", "duplicate key", "bad key", "missing key")


def _unknown_name(draw: st.DrawFn, spec: MirroredTable, nul: bool) -> str:
    known = set(spec.fields)
    return draw(texts(nul=nul).filter(lambda text: text not in known))


@st.composite
def odd_results(
    draw: st.DrawFn, operations: tuple[str, ...], *, nul: bool, wire: bool = False
) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """The recording with 1-4 odd changes; and per table, the fields and keys it touched."""
    results = copy.deepcopy(RECORDED)
    json_values = functools.partial(_json_values, wire=wire)
    touched: dict[str, set[str]] = {}
    for _ in range(draw(st.integers(1, 4))):
        spec: MirroredTable = draw(st.sampled_from(MIRRORED_TABLES))
        entries = results[COMMAND[spec.name]]
        entry = entries[draw(st.integers(0, len(entries) - 1))]
        operation = draw(st.sampled_from(operations))
        fields = sorted(name for name in spec.fields if name != spec.key)
        name = spec.key
        if operation == "missing field":
            name = draw(st.sampled_from(sorted(set(entry) - {spec.key}) or [spec.key]))
            entry.pop(name, None) if name != spec.key else None
        elif operation == "unknown field":
            name = _unknown_name(draw, spec, nul)
            entry[name] = draw(json_values(nul=nul))
        elif operation == "null":
            name = draw(st.sampled_from(fields))
            entry[name] = None
        elif operation == "any string":
            name = draw(st.sampled_from([f for f in fields if _is_text(spec.fields[f])]))
            entry[name] = draw(texts(nul=nul))
        elif operation == "any JSON":
            candidates = [f for f in fields if _is_json(spec.fields[f])]
            name = draw(st.sampled_from(candidates)) if candidates else _unknown_name(draw, spec, nul)
            entry[name] = draw(json_values(nul=nul))
        elif operation == "wrong type":
            name = draw(st.sampled_from(fields))
            entry[name] = draw(json_values(nul=nul))
        elif operation == "duplicate key":
            twin = copy.deepcopy(entry)
            twin[draw(st.sampled_from(fields))] = draw(json_values(nul=nul))
            entries.insert(draw(st.integers(0, len(entries))), twin)
        elif operation == "bad key":
            entry[spec.key] = draw(st.one_of(json_values(nul=nul), st.just(""), LONG))
        elif operation == "missing key":
            entry.pop(spec.key, None)
        touched.setdefault(spec.name, set()).add(name)
    return results, touched


def snapshot_of(results: dict[str, Any]) -> Snapshot:
    return Snapshot(
        ha_version="2025.4.4", location_name="hostile", config=results["get_config"],
        **{field: results[command] for field, command in LIST_COMMANDS.items()},
    )


def database_rows(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    rows = {spec.name: all_rows(engine, spec) for spec in MIRRORED_TABLES}
    with engine.connect() as connection:
        for table in (storage.sync_runs, storage.registry_changes):
            rows[table.name] = [dict(r) for r in connection.execute(sa.select(table)).mappings()]
    return rows


def assert_stored_or_refused_cleanly(
    engine: sa.Engine, results: dict[str, Any], touched: dict[str, set[str]], store: Callable[[], object]
) -> str:
    """Stored faithfully, or refused naming a touched table and field/key with nothing written
    (or, from the wire, refused as not JSON or not Unicode, nothing written)."""
    before = database_rows(engine)
    try:
        store()
    except ha.ProtocolError as exc:
        assert re.search(r"not JSON|not valid Unicode", str(exc)), str(exc)
        assert database_rows(engine) == before
        return "refused by the client"
    except storage.StorageError as exc:
        message = str(exc)
        assert database_rows(engine) == before, f"a refused snapshot changed the database: {message}"
        table = next((name for name in touched if message.startswith(f"{name}:")), None)
        assert table is not None, f"the refusal does not name a changed table {sorted(touched)}: {message}"
        spec = next(spec for spec in MIRRORED_TABLES if spec.name == table)
        named = {*touched[table], spec.key}
        assert any(re.search(rf"(^|\W){re.escape(name)}(\W|$)", message) for name in named), (message, named)
        return f"refused: {message}"
    assert_mirror_equals_ha(engine, results)
    return "stored"


@pytest.fixture
def synced(engine: sa.Engine) -> sa.Engine:
    storage.sync_snapshot(engine, snapshot_of(RECORDED))
    return engine


# -- payload properties -----------------------------------------------------------------------------


@PROFILE
@given(case=odd_results(TOLERATED, nul=False))
def test_what_has_contract_allows_is_always_stored_faithfully(synced: sa.Engine, case: Any) -> None:
    """Stored, except where a database cannot hold a value exactly, which is refused by name with
    nothing written: PostgreSQL's btree index entries hold about 2,700 bytes (long strings in
    indexed columns), and SQLite turns a bare integer beyond 64 bits in a JSON column into a float."""
    results, touched = case
    outcome = assert_stored_or_refused_cleanly(synced, results, touched, lambda: storage.sync_snapshot(synced, snapshot_of(results)))
    limit = DATABASE_LIMITS[synced.dialect.name]
    assert outcome == "stored" or limit in outcome, outcome


DATABASE_LIMITS = {"postgresql": "PostgreSQL indexes this column", "sqlite": "expected a 64-bit integer"}


@PROFILE
@given(case=odd_results(HOSTILE, nul=True))
def test_hostile_payloads_are_stored_faithfully_or_refused_by_name_without_a_partial_write(
    synced: sa.Engine, case: Any
) -> None:
    results, touched = case
    assert_stored_or_refused_cleanly(synced, results, touched, lambda: storage.sync_snapshot(synced, snapshot_of(results)))


@PROFILE
@given(case=odd_results(HOSTILE, nul=True, wire=True))
def test_hostile_payloads_over_the_wire_end_stored_or_refused(fake_ha: FakeHomeAssistant, synced: sa.Engine, case: Any) -> None:
    """The same, through the protocol server and the client (JSON encoding and decoding included)."""
    results, touched = case
    with fake_ha.lock:
        fake_ha.results.update(copy.deepcopy(results))

    def fetch_and_store() -> None:
        with ha.HomeAssistantClient(fake_ha.url, TOKEN, timeout=10) as client:
            storage.sync_snapshot(synced, ha.fetch_snapshot(client))

    assert_stored_or_refused_cleanly(synced, results, touched, fetch_and_store)


@pytest.mark.parametrize(
    ("command", "field", "value", "refused_on"),
    [
        # Found by the hunt above (HOMEIQ_HYPOTHESIS_EXAMPLES=200-500), kept as fixed examples:
        ("config/area_registry/list", "created_at", 2**53 + 1, {"sqlite", "postgresql"}),  # a double rounds it
        ("config/entity_registry/list", "device_id", "デバイス" * 750, {"postgresql"}),  # beyond a btree index entry
        ("config/device_registry/list", "config_entries", 2**63 + 1, {"sqlite"}),  # a bare JSON number turns float
        ("get_states", "entity_id", "sensor." + "x" * 300, {"postgresql"}),  # beyond the 255-character key column
    ],
    ids=["int-beyond-a-double", "indexed-string-of-9000-bytes", "json-int-beyond-64-bits", "key-of-307-characters"],
)
def test_found_cases_are_stored_or_refused_by_name(
    synced: sa.Engine, command: str, field: str, value: Any, refused_on: set[str]
) -> None:
    results = copy.deepcopy(RECORDED)
    results[command][0][field] = value
    table = next(spec.name for spec in MIRRORED_TABLES if COMMAND[spec.name] == command)
    outcome = assert_stored_or_refused_cleanly(synced, results, {table: {field}}, lambda: storage.sync_snapshot(synced, snapshot_of(results)))
    assert outcome.startswith("refused") == (synced.dialect.name in refused_on), outcome


# -- hostile servers --------------------------------------------------------------------------------

TIMEOUT = 3.0  # each step's answer; enough for a loaded machine, short for the silent cases


def run_with_watchdog(action: Callable[[], object], bound: float) -> BaseException | None:
    """Run `action` in a thread; fail if it is still running after `bound` seconds (a hang)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            action()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"still running after {bound:g} s: the client hung"
    return outcome[0]


def fetch_from(url: str, timeout: float = TIMEOUT, **options: Any) -> None:
    with ha.HomeAssistantClient(url, TOKEN, timeout=timeout, **options) as client:
        ha.fetch_snapshot(client)


AFTER_A_COMMAND = (*hs.AUTHENTICATED, hs.RECEIVE)  # the client has asked get_config

SERVERS: dict[str, tuple[tuple[hs.Step, ...], type[ha.HomeAssistantError], str]] = {
    "frame header claims 1 TiB": (
        (*AFTER_A_COMMAND, hs.send(hs.frame(b"[", claimed_length=2**40)), hs.SILENCE),
        ha.FrameTooLarge, r"1048576\.0 MiB websocket frame, more than the configured maximum of 64\.0 MiB",
    ),
    "frame over the configured limit": (
        (*AFTER_A_COMMAND, hs.send(hs.frame(b"[" + b" " * 70_000 + b"]")), hs.SILENCE),
        ha.FrameTooLarge, r"more than the configured maximum",
    ),
    "accepts, never answers the handshake": ((hs.SILENCE,), ha.RequestTimeout, r"did not answer within 3 s"),
    "never says auth_required": ((hs.HANDSHAKE, hs.SILENCE), ha.RequestTimeout, r"waiting for auth_required"),
    "never answers the token": ((hs.HANDSHAKE, hs.send(hs.AUTH_REQUIRED), hs.SILENCE), ha.RequestTimeout, r"waiting for auth_ok"),
    "never answers get_config": ((*AFTER_A_COMMAND, hs.SILENCE), ha.RequestTimeout, r"answer to 'get_config'"),
    "garbage instead of HTTP": ((hs.send(b"\x00\xff\x13garbage\r\n\r\n"), hs.SILENCE), ha.HomeAssistantError, r"."),
    "HTTP 200 instead of a websocket": (
        (hs.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), hs.SILENCE),
        ha.CannotConnect, r"answered HTTP 200 instead of a websocket",
    ),
    "garbage frame bytes": ((*AFTER_A_COMMAND, hs.send(b"\x73\x05hello"), hs.SILENCE), ha.ProtocolError, r"websocket protocol error"),
    "text frame that is not JSON": ((*AFTER_A_COMMAND, hs.send(hs.frame("<html>502</html>")), hs.SILENCE), ha.ProtocolError, r"not JSON"),
    "text frame that is not UTF-8": ((*AFTER_A_COMMAND, hs.send(hs.frame(b'{"id": 2, "x": "\xff\xfe"}')), hs.SILENCE), ha.ProtocolError, r"not JSON"),
    "JSON that is not a message": ((*AFTER_A_COMMAND, hs.send(hs.frame("42")), hs.SILENCE), ha.ProtocolError, r"not a message object"),
    "NaN, which JSON does not have": (
        (*AFTER_A_COMMAND, hs.send(hs.frame('{"id": 2, "type": "result", "success": true, "result": {"state": "RUNNING", "x": NaN}}')), hs.SILENCE),
        ha.ProtocolError, r"not JSON",
    ),
    "a lone UTF-16 surrogate": (
        (*AFTER_A_COMMAND, hs.send(hs.frame('{"id": 2, "type": "result", "success": true, "result": {"state": "RUNNING", "x": "\\ud800"}}')), hs.SILENCE),
        ha.ProtocolError, r"not valid Unicode",
    ),
    "closes in the middle of the handshake": ((hs.send(b"HTTP/1.1 101 Switching"), hs.CLOSE_NOW), ha.CannotConnect, r"."),
    "closes in the middle of a frame": (
        (*AFTER_A_COMMAND, hs.send(hs.frame(b'[{"id": 2, "type"', claimed_length=5_000)), hs.CLOSE_NOW),
        ha.CannotConnect, r"connection to Home Assistant was lost|closed the connection",
    ),
    "closes in the middle of a frame header": (
        (*AFTER_A_COMMAND, hs.send(b"\x81\x7f\x00\x00"), hs.CLOSE_NOW), ha.CannotConnect, r"connection to Home Assistant was lost|closed",
    ),
    "closes right after the token": ((hs.HANDSHAKE, hs.send(hs.AUTH_REQUIRED), hs.RECEIVE, hs.CLOSE_NOW), ha.CannotConnect, r"."),
}


@pytest.mark.parametrize("server", SERVERS)
def test_a_hostile_server_ends_in_its_typed_error_within_the_timeout(server: str) -> None:
    steps, error, message = SERVERS[server]
    options = {"max_frame_size": 65_536} if server == "frame over the configured limit" else {}
    with hs.scripted_server(steps) as url:
        raised = run_with_watchdog(lambda: fetch_from(url, **options), bound=TIMEOUT + 10)
    assert isinstance(raised, error), repr(raised)
    assert re.search(message, str(raised)), str(raised)
    assert TOKEN not in str(raised)


@settings(PROFILE, max_examples=min(PROFILE.max_examples, 10))  # most wait for their timeout
@given(garbage=st.binary(min_size=1, max_size=300))
def test_any_bytes_after_a_command_end_in_a_typed_error(garbage: bytes) -> None:
    with hs.scripted_server((*AFTER_A_COMMAND, hs.send(garbage), hs.SILENCE)) as url:
        raised = run_with_watchdog(lambda: fetch_from(url, timeout=0.3), bound=10)
    assert isinstance(raised, ha.HomeAssistantError), repr(raised)
    assert TOKEN not in str(raised)

