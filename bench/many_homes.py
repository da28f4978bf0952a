"""Benchmark many homes: 20 test HA servers of 2,000 entities each, synced by the sync job (one run
per home, the home being the partition) with 1, 2 and 4 runs at once, into SQLite and PostgreSQL.

    python bench/many_homes.py [--homes 20] [--entities 2000] [--concurrency 1 2 4]
                               [--databases sqlite postgresql]

The HA servers run in a process of their own (so they do not compete with the syncs for one
interpreter); each run is `sync_home_assistant.execute_in_process(partition_key=home)` in a pool
of N worker processes: the same code a Dagster run executes, without the deployment's per-run
process start (about 2-4 s here, which the queue overlaps the same way). PostgreSQL is a scratch
cluster started here (Debian's postgresql, 127.0.0.1). For each database and N: a first sync of
every home (every row added), then a resync of every home (nothing changed). Prints numbers;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "many-homes-bench-token"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def serve(homes: int, entities: int) -> None:
    """Child process: start the servers, print their URLs, run until stdin closes."""
    from homeiq_pipeline.demo.server import DemoHomeAssistant
    from homeiq_pipeline.demo.synthetic import synthetic_results

    servers = [
        DemoHomeAssistant(synthetic_results(max(entities // 10, 1), entities, entities), token=TOKEN).start()
        for _ in range(homes)
    ]
    print(json.dumps([server.url for server in servers]), flush=True)
    sys.stdin.read()
    for server in servers:
        server.stop()


_job = None


def load_job() -> None:
    """Worker start: load the code location (its settings: this round's database)."""
    global _job
    from homeiq_pipeline.definitions import defs

    _job = defs().get_repository_def().get_job("sync_home_assistant")


def sync_one(home: str) -> tuple[bool, float]:
    """Worker: one run of the sync job for one home."""
    assert _job is not None
    started = time.perf_counter()
    result = _job.execute_in_process(partition_key=home, run_config=QUIET, raise_on_error=False)
    return result.success, time.perf_counter() - started


def sync_all(names: list[str], concurrency: int) -> tuple[float, list[float], int]:
    started = time.perf_counter()  # includes each worker loading the code once, as a run does
    with ProcessPoolExecutor(max_workers=concurrency, initializer=load_job) as pool:
        outcomes = list(pool.map(sync_one, names))
    failures = sum(1 for ok, _ in outcomes if not ok)
    return time.perf_counter() - started, [seconds for _, seconds in outcomes], failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=20)
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.homes, args.entities)

    with tempfile.TemporaryDirectory(prefix="homeiq-many-homes-") as tmp_name:
        tmp = Path(tmp_name)
        servers = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--homes", str(args.homes), "--entities", str(args.entities)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            urls = json.loads(servers.stdout.readline())  # type: ignore[union-attr]
            names = [f"home{index:02d}" for index in range(1, len(urls) + 1)]
            (tmp / "homes.yaml").write_text(
                yaml.safe_dump({"homes": [{"name": n, "url": u, "token_env": "BENCH_HA_TOKEN"} for n, u in zip(names, urls)]})
            )
            os.environ.update({"HOMEIQ_HOMES_FILE": str(tmp / "homes.yaml"), "BENCH_HA_TOKEN": TOKEN})
            print(f"{len(urls)} homes of {args.entities} entities ({args.entities // 10} devices, {args.entities} states) "
                  f"each; {os.cpu_count()} CPUs")
            with databases(args.databases, tmp) as make_url:
                for database in args.databases:
                    for concurrency in args.concurrency:
                        os.environ["HOMEIQ_DB_URL"] = make_url(database, f"c{concurrency}")
                        for label in ("first sync", "resync"):
                            wall, each, failures = sync_all(names, concurrency)
                            print(f"{database:10} {concurrency} at once, {label:10}: all {len(names)} homes in {wall:6.1f} s "
                                  f"({len(names) / wall:4.2f} homes/s; one run median {statistics.median(each):.2f} s, "
                                  f"max {max(each):.2f} s){f'; {failures} FAILED' if failures else ''}")
        finally:
            servers.stdin.close()  # type: ignore[union-attr]
            servers.wait(30)


class databases:
    """SQLite files in `tmp`, and (if asked for) a scratch PostgreSQL cluster with one database each."""

    def __init__(self, kinds: list[str], tmp: Path) -> None:
        self.kinds, self.tmp, self.server = kinds, tmp, None

    def __enter__(self):
        if "postgresql" in self.kinds:
            from tests.postgres import postgres_server

            self._context = postgres_server()
            self.server = self._context.__enter__()
        return self.url

    def url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.tmp / f'{name}.db'}"
        return self.server.url(self.server.create_database(f"bench_{name}"))  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self._context.__exit__(*exc)


if __name__ == "__main__":
    main()
