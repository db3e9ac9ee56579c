"""The `meetings` model: views over every loaded source, on DuckDB and on a real Postgres."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

import dlt
import duckdb
import pytest
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.demo import load_demo
from pipelines.model import MAPPINGS, VIEWS, ModelError, refresh_meetings_model
from pipelines.model.sql import column_refs, output_names
from pipelines.model.views import ACTION_ITEM_STATUSES, STATUSES, VIEWS_BY_NAME
from simulators.meetric_partner import MeetricPartnerSimulator
from tests.model_helpers import (
    VIEW_NAMES,
    expected_counts,
    fetch,
    meetings_per_week,
    open_items_per_owner,
    talk_seconds,
)
from tests.utils import make_pipeline, run

README = Path(__file__).resolve().parents[1] / "README.md"


# ---------------------------------------------------------------------- loads
@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> SimpleNamespace:
    """All five simulators loaded into DuckDB as `meeting-elt demo` does, and the model."""
    root = tmp_path_factory.mktemp("demo")
    destination = dlt.destinations.duckdb(str(root / "demo.duckdb"))
    loads = load_demo(destination, str(root / "pipelines"))
    assert all(load.result.ok for load in loads), [load.result.error for load in loads]
    refresh = refresh_meetings_model(destination)
    return SimpleNamespace(destination=destination, path=str(root / "demo.duckdb"), refresh=refresh,
                           sims={load.source: load.simulator for load in loads},
                           pipelines={load.source: load.pipeline for load in loads})


@pytest.fixture(scope="module")
def postgres_demo(demo, postgres_server, tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("pg_demo")
    database = postgres_server.create_database("demo_model")
    destination = dlt.destinations.postgres(credentials=postgres_server.url(database))
    loads = load_demo(destination, str(root / "pipelines"), list(demo.sims))
    assert all(load.result.ok for load in loads), [load.result.error for load in loads]
    refresh = refresh_meetings_model(destination)
    yield SimpleNamespace(destination=destination, refresh=refresh, pipeline=loads[0].pipeline)
    postgres_server.drop_database(database)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request) -> SimpleNamespace:
    """The demo load with its model, on DuckDB and on Postgres: `.query(sql)` → rows."""
    loaded = request.getfixturevalue("demo" if request.param == "duckdb" else "postgres_demo")
    pipeline = (loaded.pipelines["convo"] if request.param == "duckdb" else loaded.pipeline)

    def query(sql: str) -> list[tuple]:
        with pipeline.sql_client() as client, client.execute_query(sql) as cursor:
            return [tuple(r) for r in cursor.fetchall()]

    def client():
        return pipeline.sql_client()

    return SimpleNamespace(query=query, client=client, refresh=loaded.refresh, backend=request.param)


def duck(path: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(path, read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con


# ---------------------------------------------------------------------- the views
def test_every_view_unions_the_sources_that_have_its_data(warehouse):
    assert warehouse.refresh.views == {
        "meetings": ["convo", "meemo", "meetlog", "meetric", "meetric_partner"],
        "participants": ["meemo", "meetric", "meetric_partner"],
        "transcript_segments": ["convo", "meemo", "meetric_partner"],
        "summaries": ["convo", "meemo", "meetlog", "meetric", "meetric_partner"],
        "action_items": ["convo", "meetric", "meetric_partner"],
        "topics": ["convo", "meemo", "meetric", "meetric_partner"],
    }


def test_views_hold_every_live_row_of_the_source_tables(warehouse):
    with warehouse.client() as client:
        expected = expected_counts(client)
    got = {}
    for view in VIEW_NAMES:
        for source, count in warehouse.query(f"SELECT source, count(*) FROM meetings.{view} GROUP BY source"):
            got[view, source] = count
    assert got == expected
    assert all(n > 0 for n in got.values()) and len(got) == 23


def test_every_meeting_status_is_one_of_the_five(warehouse):
    statuses = dict(warehouse.query("SELECT status, count(*) FROM meetings.meetings GROUP BY status"))
    assert set(statuses) <= set(STATUSES)
    assert {"scheduled", "processing", "ready", "failed"} <= set(statuses)
    items = {r[0] for r in warehouse.query("SELECT DISTINCT status FROM meetings.action_items")}
    assert items <= {*ACTION_ITEM_STATUSES, None} and "open" in items and None in items


def test_only_a_meetings_last_segment_lacks_an_end(warehouse):
    unended = warehouse.query("""
        SELECT s.source, s.meeting_id, s.segment_index, last.n
        FROM meetings.transcript_segments s
        JOIN (SELECT source, meeting_id, max(segment_index) AS n FROM meetings.transcript_segments
              GROUP BY source, meeting_id) last USING (source, meeting_id)
        WHERE s.end_seconds IS NULL""")
    assert unended, "Convo segments have no ends: each meeting's last one stays open"
    assert all(index == last for _, _, index, last in unended)
    assert {source for source, *_ in unended} <= {"convo", "meetric_partner"}
    backwards = warehouse.query("SELECT count(*) FROM meetings.transcript_segments "
                                "WHERE end_seconds < start_seconds")
    assert backwards == [(0,)]


def test_view_keys_are_unique(warehouse):
    for view in VIEWS:
        key = ", ".join(view.key)
        dupes = warehouse.query(f"SELECT {key}, count(*) FROM meetings.{view.name} "
                                f"GROUP BY {key} HAVING count(*) > 1")
        assert dupes == [], view.name


def test_instants_are_utc_timestamps_and_meeting_ids_are_text(warehouse):
    rows = warehouse.query("SELECT source, meeting_id, started_at, ended_at, deleted_at "
                           "FROM meetings.meetings WHERE started_at IS NOT NULL")
    assert {r[0] for r in rows} == {"convo", "meemo", "meetlog", "meetric", "meetric_partner"}
    for _, meeting_id, started, ended, _ in rows:
        assert isinstance(meeting_id, str)
        assert isinstance(started, datetime) and started.utcoffset().total_seconds() == 0
        assert ended is None or ended >= started
    ids = warehouse.query("SELECT meeting_id FROM meetings.participants WHERE source = 'meemo' LIMIT 1")
    assert isinstance(ids[0][0], str)
    due = warehouse.query("SELECT due_date FROM meetings.action_items WHERE due_date IS NOT NULL LIMIT 1")
    assert isinstance(due[0][0], date)


# ---------------------------------------------------------------------- the analyst questions
def readme_query(title: str) -> str:
    """The README's SQL block that starts with `-- <title>`: the test runs what users read."""
    for block in re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.S):
        if block.startswith(f"-- {title}"):
            return block
    raise AssertionError(f"README has no query '-- {title}'")


def test_talk_time_per_speaker_per_week_across_all_tools(demo):
    with duck(demo.path) as con:
        rows = con.execute(readme_query("talk time per speaker per week")).fetchall()
    got = {(speaker, week.date()): minutes for speaker, week, minutes in rows}
    expected = {key: round(seconds / 60, 1) for key, seconds in talk_seconds(demo.sims).items()}
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - expected[k]) < 0.11 for k in expected), \
        {k: (got[k], expected[k]) for k in expected if abs(got[k] - expected[k]) >= 0.11}  # both rounded to 0.1
    speakers = {speaker for speaker, _ in got}
    assert "Erik Lindström" in speakers  # the same person in three tools, one row a week


def test_meetings_per_week_per_tool(demo):
    with duck(demo.path) as con:
        rows = con.execute(readme_query("meetings per week per tool")).fetchall()
    got = {(week.date(), source): n for week, source, n in rows}
    assert got == meetings_per_week(demo.sims)
    assert {source for _, source in got} == set(MAPPINGS)


def test_open_action_items_per_owner(demo):
    with duck(demo.path) as con:
        rows = con.execute(readme_query("open action items per owner")).fetchall()
    assert dict(rows) == open_items_per_owner(demo.sims)
    assert [n for _, n in rows] == sorted((n for _, n in rows), reverse=True)


# ---------------------------------------------------------------------- deletions, gaps, datasets
@pytest.fixture
def partner(start_sim) -> MeetricPartnerSimulator:
    return start_sim(MeetricPartnerSimulator, conversations=12, seed=5, requests_per_minute=None,
                     daily_quota=None, processing_share=0.0)


def test_a_deleted_meeting_keeps_its_row_and_leaves_the_child_views(partner, tmp_path):
    pipeline = make_pipeline(tmp_path, "meetric_partner")
    assert run(pipeline, "meetric_partner", **partner.source_config(), sweep_interval_hours=0).ok
    doomed = next(c.id for c in partner.visible() if c.status == "completed" and c.insights)
    partner.delete(doomed)
    assert run(pipeline, "meetric_partner", **partner.source_config(), sweep_interval_hours=0).ok
    refresh_meetings_model(pipeline)
    with pipeline.sql_client() as client:
        def count(view: str) -> int:
            with client.execute_query(f"SELECT count(*) FROM meetings.{view} WHERE meeting_id = %s",
                                      doomed) as cursor:
                return cursor.fetchone()[0]

        with client.execute_query("SELECT deleted_at FROM meetings.meetings WHERE meeting_id = %s",
                                  doomed) as cursor:
            assert cursor.fetchone()[0] is not None
        assert {v: count(v) for v in VIEW_NAMES if v != "meetings"} == {
            "participants": 0, "transcript_segments": 0, "summaries": 0, "action_items": 0, "topics": 0}
        raw = fetch(client, "meetric_partner", "transcript_segments")
        assert any(s["meeting_id"] == doomed for s in raw)  # the source table keeps them


def test_a_table_the_source_has_not_created_yet_contributes_nothing(partner, tmp_path):
    token = partner.add_token(scopes={"conversations", "transcripts"})
    pipeline = make_pipeline(tmp_path, "meetric_partner")
    assert run(pipeline, "meetric_partner", base_url=partner.base_url, api_token=token).ok
    done = refresh_meetings_model(pipeline)
    assert "meetric_partner" not in done.views["action_items"] + done.views["topics"]
    assert "meetric_partner" in done.views["meetings"] and done.views["action_items"] == []
    with pipeline.sql_client() as client:
        with client.execute_query("SELECT count(*) FROM meetings.meetings") as cursor:
            assert cursor.fetchone()[0] == len(partner.visible())
        with client.execute_query("SELECT count(*) FROM meetings.action_items") as cursor:
            assert cursor.fetchone()[0] == 0


def test_a_column_the_source_has_not_created_yet_reads_as_null(tmp_path):
    path = str(tmp_path / "w.duckdb")
    with duckdb.connect(path) as con:
        con.execute("CREATE SCHEMA meetlog")
        con.execute("CREATE TABLE meetlog._dlt_loads (load_id TEXT, schema_name TEXT, status BIGINT, "
                    "inserted_at TIMESTAMPTZ)")
        con.execute("INSERT INTO meetlog._dlt_loads VALUES ('1', 'meetlog', 0, now())")
        # an early load: no `language`, `summary` or `deleted_at` column yet
        con.execute("CREATE TABLE meetlog.transcripts (id TEXT, title TEXT, status TEXT, "
                    "created_at TIMESTAMPTZ, duration_seconds BIGINT)")
        con.execute("INSERT INTO meetlog.transcripts VALUES ('t1', 'Kickoff', 'completed', "
                    "'2026-05-08T09:14:22+02:00', 1842)")
    refresh_meetings_model(dlt.destinations.duckdb(path))
    with duck(path) as con:
        assert con.execute("SELECT meeting_id, status, language, deleted_at, started_at "
                           "FROM meetings.meetings").fetchall() == [
            ("t1", "ready", None, None, datetime.fromisoformat("2026-05-08T07:14:22+00:00"))]
        assert con.execute("SELECT count(*) FROM meetings.summaries").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM meetings.transcript_segments").fetchone() == (0,)


def test_a_source_loaded_under_another_dataset_name_is_found(partner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"SOURCES__MEETRIC_PARTNER__BASE_URL": partner.base_url,
           "SOURCES__MEETRIC_PARTNER__API_TOKEN": partner.token}
    # the CLI's default file, meetings.duckdb, is a catalog named `meetings`, like the model's
    # dataset: DuckDB finds `meetings.x` ambiguous there, and the refresh must not
    args = ["run", "meetric_partner", "--dataset", "crm_calls", "--pipelines-dir", str(tmp_path / "p")]
    for _ in range(2):  # the second refresh replaces the views of the first
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
        assert "meetings model" in result.output and "meetric_partner (crm_calls)" in result.output
    with duck(str(tmp_path / "meetings.duckdb")) as con:
        assert con.execute("SELECT source, count(*) FROM meetings.meetings.meetings GROUP BY 1").fetchall() == [
            ("meetric_partner", len(partner.visible()))]


def test_the_models_dataset_cannot_hold_a_source(partner, tmp_path):
    pipeline = make_pipeline(tmp_path, "meetric_partner", dataset="meetings")
    assert run(pipeline, "meetric_partner", **partner.source_config()).ok
    with pytest.raises(ModelError, match="holds a source's tables"):
        refresh_meetings_model(pipeline)


def test_a_destination_of_files_gets_no_views_and_a_clear_reason(tmp_path):
    with pytest.raises(ModelError, match="needs a SQL destination"):
        refresh_meetings_model(dlt.destinations.filesystem(str(tmp_path / "files")))


# ---------------------------------------------------------------------- the mappings themselves
def test_every_select_gives_exactly_the_views_columns():
    for source, mapping in MAPPINGS.items():
        for view_name in mapping.selects:
            view = VIEWS_BY_NAME[view_name]
            assert output_names(mapping, view_name) == view.column_names[1:], (source, view_name)


def test_every_column_a_mapping_reads_is_declared_with_its_type():
    for source, mapping in MAPPINGS.items():
        used: dict[str, set[str]] = {}
        for view_name in mapping.selects:
            for table, columns in column_refs(mapping, view_name).items():
                undeclared = columns - set(mapping.reads[table])
                assert not undeclared, (source, view_name, table, undeclared)
                used.setdefault(table, set()).update(columns)
        assert {t: set(c) for t, c in mapping.reads.items()} == used, source
