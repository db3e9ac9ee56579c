"""What the Meetric partner simulator holds, shaped like the tables the source should load."""

from __future__ import annotations

from typing import Any

from simulators.meetric_partner import MeetricPartnerSimulator
from sources._common.timeutil import parse_instant

FAST_HTTP = {"requests_per_minute": 0, "concurrency": 4, "backoff_initial_seconds": 0.005,
             "backoff_max_seconds": 0.05}


def partner_kwargs(sim: MeetricPartnerSimulator, **extra: Any) -> dict[str, Any]:
    return {**sim.source_config(), "page_size": 10, "http": dict(FAST_HTTP), **extra}


def expected(sim: MeetricPartnerSimulator, exclude: set[str] = frozenset()) -> dict[str, set]:
    """Table contents the source must produce, as sets of comparable tuples (leaving out the
    conversations in `exclude`, e.g. malformed ones)."""
    visible = [c for c in sim.visible() if c.id not in exclude]
    done = [c for c in visible if c.status == "completed"]
    segments = set()
    for c in done:
        if "sentences" in c.transcript:
            for i, s in enumerate(c.transcript["sentences"]):
                segments.add((c.id, i, s["speaker_name"], round(s["start"], 3), s["text"]))
        else:
            origin = parse_instant(sim.public(c)["date"])  # as the API shows it (ms)
            for i, m in enumerate(c.transcript["messages"]):
                offset = (parse_instant(m["sent_at"]) - origin).total_seconds()
                segments.add((c.id, i, m["sender"], round(offset, 3), m["content"]))
    return {
        "conversations": {(c.id, c.title, c.status, parse_instant(sim.public(c)["updated_at"])) for c in visible},
        "transcript_segments": segments,
        "insights": {(i["id"], c.id, i["type"], i["text"]) for c in done for i in c.insights},
        "conversation_topics": {(c.id, t["name"], t["mentions"]) for c in done for t in c.topics},
        "summaries": {(c.id, c.summary) for c in done},
        "users": {(u["id"], u["name"], u["email"]) for u in sim.users},
        "teams": {(t["id"], t["name"]) for t in sim.teams},
        "departments": {(d["id"], d["name"]) for d in sim.departments},
    }


QUERIES = {
    "conversations": "SELECT id, title, status, updated_at FROM {t} WHERE deleted_at IS NULL",
    "transcript_segments": "SELECT meeting_id, segment_index, speaker, start_seconds, text FROM {t}",
    "insights": "SELECT id, conversation_id, type, text FROM {t}",
    "conversation_topics": "SELECT conversation_id, name, mentions FROM {t}",
    "summaries": "SELECT conversation_id, summary FROM {t}",
    "users": "SELECT id, name, email FROM {t} WHERE deleted_at IS NULL",
    "teams": "SELECT id, name FROM {t}",
    "departments": "SELECT id, name FROM {t}",
}


def loaded(pipeline: Any, tables: list[str] | None = None) -> dict[str, set]:
    """The same tables as loaded, as sets of tuples (timestamps as aware UTC datetimes)."""
    out = {}
    with pipeline.sql_client() as client:
        for table, sql in QUERIES.items():
            if tables is not None and table not in tables:
                continue
            if table not in pipeline.default_schema.tables:
                out[table] = set()
                continue
            with client.execute_query(sql.format(t=client.make_qualified_table_name(table))) as cur:
                out[table] = {tuple(_normal(v) for v in row) for row in cur.fetchall()}
    return out


def conversation_id_of(table: str, row: tuple) -> str:
    """The conversation a `loaded()` tuple belongs to."""
    return row[1] if table == "insights" else row[0]


def source_state_of(pipeline: Any) -> dict:
    """The source's dlt state, as the last run committed it."""
    return pipeline.state["sources"]["meetric_partner"]


def ledger_of(pipeline: Any) -> dict:
    """The conversations' ledger (`sources/_common/ledger.py`): records, cursor, last_sweep_at."""
    return source_state_of(pipeline)["ledger"]["conversations"]


def cursor_of(pipeline: Any) -> dict:
    """The conversations listing's bookmarks: newest_date, unlisted."""
    return ledger_of(pipeline).get("cursor", {})


def quota_of(pipeline: Any) -> dict:
    """The daily quota count (`sources/meetric_partner/quota.py`)."""
    return source_state_of(pipeline)["quota"]


def marks_of(pipeline: Any, table: str) -> dict:
    """Deletion marks still owed to `table`."""
    return source_state_of(pipeline)["ledger"].get("_marks", {}).get(table, {})


def row_lists(pipeline: Any, table: str, key_sql: str) -> list[tuple]:
    """Rows with duplicates kept, to prove nothing was loaded twice."""
    with pipeline.sql_client() as client:
        sql = f"SELECT {key_sql} FROM {client.make_qualified_table_name(table)}"
        with client.execute_query(sql) as cur:
            return cur.fetchall()


def _normal(value: Any) -> Any:
    """Timestamps as aware UTC datetimes, floats rounded as `expected` rounds them."""
    from datetime import UTC, datetime

    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value
