"""Meetric workspace deletions marked inside the source's own run, in a plain `pipeline.run`
(no CLI), on DuckDB, a real Postgres and the filesystem destination: a deleted record keeps
every other column (its JSON lists too), and so do its insights and action items, a removed
manager and the managers of a team that vanished. This API has no child tables: its lists
are JSON columns.

Also: a per-item table selected alone loads alone and costs only its own calls."""

from __future__ import annotations

from collections import Counter

from simulators.meetric import MeetricSimulator
from sources.meetric import meetric
from tests.meetric_workspace_helpers import FAST, requests_by_endpoint
from tests.utils import make_pipeline

from .destinations import without

SIM = {"accounts": 2, "conversations": 16, "users": 8, "span_days": 10, "rate_limit": None, "seed": 61}
MARKED = ("conversations", "insights", "action_items", "team_managers")


def by_key(rows: list[dict], *key: str) -> dict[tuple, dict]:
    return {tuple(str(r[k]) for k in key): r for r in rows}


def test_deleted_records_are_marked_in_a_plain_pipeline_run(start_sim, warehouse):
    sim = start_sim(MeetricSimulator, **SIM)
    pipeline = warehouse.pipeline("meetric_deletions")
    source = lambda: meetric(**sim.source_config(), page_size=5, sweep_interval_hours=0, http=FAST)  # noqa: E731
    warehouse.run(pipeline, source())
    keys = {t: ("id",) for t in MARKED} | {"team_managers": ("team_id", "user_id")}
    before = {t: by_key(warehouse.rows(pipeline, t), *keys[t]) for t in MARKED}

    # two processed conversations (one per account) with their insights and action items
    first, second = sim.account_ids
    gone = [next(c for c in sim.public(acc, "conversations") if c["status"] == "processed"
                 and any(i["conversation_id"] == c["id"] for i in sim.public(acc, "action_items")))["id"]
            for acc in (first, second)]
    children = {t: {k for k, r in before[t].items() if r["conversation_id"] in gone} for t in ("insights", "action_items")}
    assert children["insights"] and children["action_items"]
    for cid in gone:
        sim.delete_conversation(cid)
    # a manager removed from a team that stays, and a team that vanished with its managers
    account = sim.accounts[first]
    kept, removed = next((t, next(iter(m))) for t, m in account.team_managers.items() if len(m) == 2)
    sim.remove_team_manager(kept, removed)
    vanished = next(t for t in account.team_managers if t != kept and account.team_managers[t])
    lost = {(vanished, uid) for uid in account.team_managers.pop(vanished)}
    for user in account.users.values():
        if user["team_id"] == vanished:
            user["team_id"] = None

    warehouse.run(pipeline, source())

    after = {t: by_key(warehouse.rows(pipeline, t), *keys[t]) for t in MARKED}
    want = {"conversations": {(c,) for c in gone}, "insights": children["insights"],
            "action_items": children["action_items"], "team_managers": {(kept, removed)} | lost}
    for table in MARKED:
        marked = {k for k, r in after[table].items() if r["deleted_at"] is not None}
        assert marked == want[table], table
        for k in marked:  # every other column as it was
            assert without(after[table][k], "deleted_at") == without(before[table][k], "deleted_at"), (table, k)
        for k in set(after[table]) - marked:
            assert after[table][k] == before[table][k], (table, k)
    assert any(after["conversations"][(c,)]["participants"] for c in gone)  # a JSON list, kept

    # marked once: the next run loads nothing into these tables
    warehouse.run(pipeline, source())
    counts = pipeline.last_trace.last_normalize_info.row_counts
    assert not set(counts) & set(MARKED), counts


def test_a_per_item_table_selected_alone_loads_alone_and_costs_only_its_calls(start_sim, tmp_path):
    sim = start_sim(MeetricSimulator, **SIM)
    pipeline = make_pipeline(tmp_path, "meetric_managers")
    config = {**sim.source_config(), "page_size": 5, "http": FAST}
    pipeline.run(meetric(**config).with_resources("team_managers")).raise_on_failed_jobs()
    counts = {t: n for t, n in pipeline.last_trace.last_normalize_info.row_counts.items() if not t.startswith("_dlt")}
    want = sum(len(m) for acc in sim.account_ids for m in sim.managers(acc, "team_managers").values())
    assert counts == {"team_managers": want}
    calls = requests_by_endpoint(sim)
    teams = sum(len(sim.accounts[acc].team_managers) for acc in sim.account_ids)
    assert calls == Counter({"users": calls["users"], "teams/{id}/managers": teams}), calls  # one call a team
    assert calls["users"] == 2 * 2  # 8 users a account, 5 a page
    sim.clear_log()
    pipeline.run(meetric(**config).with_resources("team_managers")).raise_on_failed_jobs()
    assert requests_by_endpoint(sim) == Counter({"users": 4})  # nothing new: the list only
    assert "team_managers" not in pipeline.last_trace.last_normalize_info.row_counts
