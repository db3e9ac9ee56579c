"""Test isolation: no project config leaks in, every simulator is stopped."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
# telemetry off: tests never talk to the internet
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
# with Airflow installed, dlt looks up every config value in Airflow's Variables too (a
# database query each, seconds per run); only the Airflow tests want that, and set it there
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")


@pytest.fixture(autouse=True)
def _report_notes_logged() -> Iterator:
    """The CLI turns the report's log lines off for its process; each test starts with them on."""
    from sources._common.report import log_notes

    log_notes(True)
    yield
    log_notes(True)


@pytest.fixture(autouse=True)
def _feeds_hand_over_every_batch() -> Iterator:
    """No source's feed gives up waiting for dlt to hand its batch to every table
    (`engine.handed_over_one_at_a_time`): a batch held beyond dlt's forks would fail here."""
    from sources._common import engine

    before = engine.handover_timeouts
    yield
    assert engine.handover_timeouts == before, "a feed stopped waiting for its batch to reach its tables"


@pytest.fixture
def start_sim() -> Iterator:
    """`start_sim(SimulatorClass, **kwargs)` starts a simulator and stops it after the test."""
    started = []

    def start(cls, **kwargs):
        sim = cls(**kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


# ------------------------------------------------------------------ a real Postgres
@pytest.fixture(scope="session")
def postgres_server() -> Iterator:
    """A throwaway PostgreSQL server for the whole session (tests/postgres.py).

    Skips the test when the server binaries are missing, unless MEETING_ELT_REQUIRE_POSTGRES=1,
    where it fails.
    """
    from tests.postgres import REQUIRE_ENV, PostgresServer, PostgresUnavailable, required

    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        if required():
            pytest.fail(f"{exc} ({REQUIRE_ENV}=1 requires a server)")
        pytest.skip(f"{exc}; set {REQUIRE_ENV}=1 to fail instead of skipping")
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture
def postgres_credentials(postgres_server) -> Iterator[str]:
    """A fresh, empty database for one test, as a dlt connection string."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_destination(postgres_credentials):
    """A dlt `postgres` destination on a fresh database."""
    import dlt

    return dlt.destinations.postgres(credentials=postgres_credentials)


# ------------------------------------------------------------------ the three destinations
@pytest.fixture(params=("duckdb", "postgres", "filesystem"))
def warehouse(request, tmp_path):
    """DuckDB, a real Postgres, and the filesystem destination (Delta) on a local folder."""
    from tests.destinations import make_warehouse

    return make_warehouse(request.param, tmp_path, request)
