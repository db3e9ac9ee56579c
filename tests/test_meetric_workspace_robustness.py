"""The Meetric workspace source when things go wrong: keys, accounts, faults, limits, bad records, config."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.runner import explain
from simulators.base import Faults
from simulators.meetric import MeetricSimulator
from sources._common.errors import AuthError, ConfigError
from sources._common.report import get_report
from sources.meetric import check, meetric
from sources.meetric.accounts import parse_accounts
from tests.meetric_workspace_helpers import FAST, TABLES, expected, load, loaded
from tests.utils import grep_tree, make_pipeline, rows, run_strict

SMALL = {"accounts": 2, "conversations": 10, "users": 6, "span_days": 8, "rate_limit": None}


def test_read_only_key_is_enough_to_load_everything(start_sim, tmp_path) -> None:
    sim = start_sim(MeetricSimulator, **{**SMALL, "accounts": 1}, seed=11)
    acc = sim.account_ids[0]
    read_only = sim.add_key([acc], write=False)
    config = {"base_url": sim.base_url, "account_id": acc, "api_key": read_only}  # the host works too
    pipeline = make_pipeline(tmp_path, "meetric")
    run_strict(pipeline, meetric(**config, page_size=5, http=FAST))
    for table in TABLES:
        assert loaded(pipeline, table) == expected(sim, table) != {}, table
    assert {r.method for r in sim.log} == {"GET"} and {r.status for r in sim.log} == {200}
    assert check(**config, http=FAST) == dict.fromkeys(TABLES)
    import httpx  # the key really is read-only: the API refuses it any write

    answer = httpx.post(f"{sim.base_url}/api/v1/conversations", json={"title": "x"},
                        headers={"Authorization": f"Bearer {read_only}", "X-Account-ID": acc})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "insufficient_permissions"


def test_wrong_account_id_fails_clearly_and_loads_nothing(start_sim, tmp_path, caplog) -> None:
    sim = start_sim(MeetricSimulator, **SMALL, seed=12)
    good = sim.source_config()["accounts"]
    wrong = [good[0], {"account_id": "acc_not_mine", "api_key": good[0]["api_key"]}]
    pipeline = make_pipeline(tmp_path, "meetric")
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(meetric(base_url=sim.source_config()["base_url"], accounts=wrong, http=FAST))
    message = explain(failure.value)
    assert "account 'acc_not_mine': authentication failed" in message
    assert "API key is not valid for account 'acc_not_mine'" in message
    assert good[0]["api_key"] not in message and good[0]["api_key"] not in caplog.text
    with pytest.raises(AuthError, match="acc_not_mine"):
        check(base_url=sim.source_config()["base_url"], accounts=wrong, http=FAST)
    load(pipeline, sim)  # with the right ids the same pipeline loads exactly the accounts' data
    for table in TABLES:
        assert loaded(pipeline, table) == expected(sim, table), table


def test_faults_leave_the_tables_equal_to_a_clean_run(start_sim, tmp_path) -> None:
    sim = start_sim(MeetricSimulator, **SMALL, seed=13)
    clean = make_pipeline(tmp_path, "clean")
    load(clean, sim)
    sim.faults = Faults(error_5xx=0.10, rate_429=0.05, drop=0.02, truncate=0.02, seed=5)
    sim.clear_log()
    faulty = make_pipeline(tmp_path, "faulty")
    load(faulty, sim)
    injected = sum(r.fault is not None for r in sim.log)
    assert injected >= 5
    for table in TABLES:
        assert loaded(faulty, table) == loaded(clean, table), table
    print(f"\nfaults: {injected} of {len(sim.log)} requests failed on purpose; tables equal a clean run's")


def test_a_run_that_fails_midway_leaves_the_next_run_converging(start_sim, tmp_path) -> None:
    sim = start_sim(MeetricSimulator, **SMALL, seed=14)
    pipeline = make_pipeline(tmp_path, "meetric")
    sim.faults = Faults(error_5xx=0.3, seed=2)
    with pytest.raises(PipelineStepFailed):
        run_strict(pipeline, meetric(**sim.source_config(), page_size=3,
                                     http={**FAST, "max_retries": 0}))
    sim.faults = Faults()
    load(pipeline, sim)
    for table in TABLES:
        assert loaded(pipeline, table) == expected(sim, table), table


KILLABLE_RUN = """
import json, sys
import dlt
from sources.meetric import meetric
root = sys.argv[2]
pipeline = dlt.pipeline(pipeline_name="test_meetric", dataset_name="meetric", pipelines_dir=root + "/pipelines",
                        destination=dlt.destinations.duckdb(root + "/meetric.duckdb"))
pipeline.run(meetric(**json.loads(sys.argv[1]), page_size=3, http={"requests_per_minute": 0}))
"""


def _start_killable(tmp_path: Path, config: dict) -> subprocess.Popen:
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE_RUN)
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen([sys.executable, str(script), json.dumps(config), str(tmp_path)], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_9_at_random_points_then_the_next_run_converges(start_sim, tmp_path) -> None:
    sim = start_sim(MeetricSimulator, **SMALL, seed=20, latency_seconds=0.01)
    config = sim.source_config()
    # first kill: somewhere in the extraction; second: after its last request (normalize or load)
    kill_at = random.Random(20).randint(5, 40)
    for stage in ("extract", "after requests"):
        sim.clear_log()
        proc = _start_killable(tmp_path, config)
        deadline = time.monotonic() + 30
        last, quiet_since = -1, time.monotonic()
        while proc.poll() is None and time.monotonic() < deadline:
            served = len(sim.log)
            if stage == "extract" and served >= kill_at:
                break
            if served != last:
                last, quiet_since = served, time.monotonic()
            elif stage != "extract" and served and time.monotonic() - quiet_since > 0.15:
                break
            time.sleep(0.01)
        proc.kill()
        assert proc.wait() == -9, f"the run ended before the kill ({stage})"
    sim.latency_seconds = 0
    pipeline = make_pipeline(tmp_path, "meetric")
    load(pipeline, sim)
    for table in TABLES:
        assert loaded(pipeline, table) == expected(sim, table), table


def test_request_budget_stops_cleanly_and_the_next_run_continues(start_sim, tmp_path) -> None:
    sim = start_sim(MeetricSimulator, **SMALL, seed=15)
    pipeline = make_pipeline(tmp_path, "meetric")
    load(pipeline, sim, http={**FAST, "max_requests": 12})
    report = get_report("meetric")
    assert report.waiting and 12 <= report.requests <= 12 + 4  # at most the requests in flight past it
    load(pipeline, sim)
    for table in TABLES:
        assert loaded(pipeline, table) == expected(sim, table), table


def test_secrets_never_reach_logs_tables_or_files(start_sim, tmp_path, caplog, capsys, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    sim = start_sim(MeetricSimulator, **SMALL, seed=16)
    config = sim.source_config()
    keys = [a["api_key"] for a in config["accounts"]]
    # the keys come the way they do in production: from dlt's config providers
    monkeypatch.setenv("SOURCES__MEETRIC__BASE_URL", config["base_url"])
    monkeypatch.setenv("SOURCES__MEETRIC__ACCOUNTS", json.dumps(config["accounts"]))
    pipeline = make_pipeline(tmp_path, "meetric")
    run_strict(pipeline, meetric(page_size=4, http=FAST))
    sim.faults = Faults(error_5xx=0.2, seed=3)
    run_strict(pipeline, meetric(sweep_interval_hours=0, http=FAST))
    monkeypatch.delenv("SOURCES__MEETRIC__ACCOUNTS")
    monkeypatch.setenv("SOURCES__MEETRIC__ACCOUNT_ID", config["accounts"][0]["account_id"])
    monkeypatch.setenv("SOURCES__MEETRIC__API_KEY", keys[1])  # the other account's key: a 401
    with pytest.raises(PipelineStepFailed) as failure:  # a failing run's messages too
        pipeline.run(meetric(http=FAST))
    out = capsys.readouterr()
    for key in keys:
        assert key not in caplog.text and key not in out.out + out.err
        assert key not in explain(failure.value) and key not in repr(failure.value)
        assert grep_tree(tmp_path, key) == []
        for table in TABLES:
            assert key not in str(rows(pipeline, table))
        assert key not in json.dumps(pipeline.state, default=str)
    assert loaded(pipeline, "conversations") == expected(sim, "conversations")
    assert keys[0] not in repr(parse_accounts(keys[0], "acc_x", None)[0])


def test_paces_by_the_rate_limit_headers_without_a_single_429(start_sim, tmp_path) -> None:
    sim = start_sim(MeetricSimulator, **{**SMALL, "conversations": 6, "rate_limit": 14},
                    rate_window_seconds=1.0, seed=17)
    ids = sim.account_ids
    shared = sim.add_key(ids)  # one key for both accounts: they share its limit
    accounts = [{"account_id": a, "api_key": shared} for a in ids]
    pipeline = make_pipeline(tmp_path, "meetric")
    run_strict(pipeline, meetric(base_url=sim.base_url, accounts=accounts, page_size=100,
                                 summary_backfill_days=2, http={**FAST, "concurrency": 2}))
    statuses = {r.status for r in sim.log}
    report = get_report("meetric")
    assert 429 not in statuses and report.retries == 0
    assert len(sim.log) > 2 * 14, "more requests than two windows allow: pacing had to hold some"
    for table in TABLES:
        assert loaded(pipeline, table) == expected(sim, table, summary_days=2), table
    print(f"\npacing: {len(sim.log)} requests at 14 per 1-second window, 0 answered 429")


def test_a_key_that_may_not_read_users_skips_users_and_managers_with_a_warning(start_sim, tmp_path) -> None:
    sim = start_sim(MeetricSimulator, **{**SMALL, "accounts": 1}, seed=18)
    acc = sim.account_ids[0]
    key = sim.add_key([acc], write=False, denied={"/users", "/teams", "/departments"})
    pipeline = make_pipeline(tmp_path, "meetric")
    run_strict(pipeline, meetric(base_url=sim.base_url, account_id=acc, api_key=key, http=FAST))
    report = get_report("meetric")
    assert set(report.skipped) == {"users", "team_managers", "department_managers"}
    assert all(acc in why and "permission" in why for why in report.skipped.values())
    for table in ("conversations", "insights", "action_items", "insight_trends", "insight_summary"):
        assert loaded(pipeline, table) == expected(sim, table), table
    access = check(base_url=sim.base_url, account_id=acc, api_key=sim.add_key([acc], denied={"/teams"}))
    assert {table for table, why in access.items() if why} == {"team_managers"}
    assert acc in access["team_managers"] and "permission" in access["team_managers"]


def test_a_key_refused_for_one_account_skips_that_account_only(start_sim, tmp_path) -> None:
    sim = start_sim(MeetricSimulator, **SMALL, seed=21)
    first, second = sim.account_ids
    limited = sim.add_key([second], write=False, denied={"/users", "/teams"})
    accounts = [{"account_id": first, "api_key": sim.accounts[first].key},
                {"account_id": second, "api_key": limited}]
    pipeline = make_pipeline(tmp_path, "meetric")
    run_strict(pipeline, meetric(base_url=sim.base_url, accounts=list(reversed(accounts)), http=FAST))
    report = get_report("meetric")
    assert set(report.skipped) == {"users", "team_managers", "department_managers"}
    assert all(second in why and "permission" in why for why in report.skipped.values())
    for table in ("users", "team_managers", "department_managers"):  # the first account's, whole
        got = {k: v for k, v in loaded(pipeline, table).items() if v["account_id"] == first}
        assert got == {k: v for k, v in expected(sim, table).items() if v["account_id"] == first} != {}, table
        assert {v["account_id"] for v in loaded(pipeline, table).values()} == {first}, table
    for table in ("conversations", "insights", "action_items", "insight_trends", "insight_summary"):
        assert loaded(pipeline, table) == expected(sim, table), table
    # the first account is still swept: a user deleted there is marked, the other's not judged
    gone = next(iter(sim.accounts[first].users))
    del sim.accounts[first].users[gone]
    run_strict(pipeline, meetric(base_url=sim.base_url, accounts=accounts, http=FAST))
    assert {r["id"] for r in rows(pipeline, "users", where="deleted_at IS NOT NULL")} == {gone}
    assert not [w for w in get_report("meetric").warnings if "refusing" in w]


def test_unknown_fields_are_kept_and_malformed_records_are_named(start_sim, tmp_path) -> None:
    sim = start_sim(MeetricSimulator, **{**SMALL, "accounts": 1}, seed=19)
    acc = sim.account_ids[0]
    when = datetime.now(UTC) - timedelta(hours=3)
    sim.inject(acc, "conversations", {"id": None, "title": "no id", "date": when, "status": "processed",
                                      "updated_at": when})
    sim.inject(acc, "conversations", {"id": "conv_odd", "title": "odd", "date": when + timedelta(minutes=1),
                                      "duration": "n/a", "status": "processed", "updated_at": when,
                                      "meeting_platform": "zoom"})
    sim.inject(acc, "insights", {"id": "insight_q", "conversation_id": "conv_odd", "type": "question",
                                 "content": "Why?", "created_at": when, "asked_by": "user_1"})
    pipeline = make_pipeline(tmp_path, "meetric")
    _, report = load(pipeline, sim)
    odd = next(r for r in rows(pipeline, "conversations") if r["id"] == "conv_odd")
    assert odd["duration"] is None and odd["duration__raw"] == "n/a" and odd["meeting_platform"] == "zoom"
    question = next(r for r in rows(pipeline, "insights") if r["id"] == "insight_q")
    assert question["type"] == "question" and question["asked_by"] == "user_1"
    bad = {(b.table, b.loaded): f"{b.record_id}: {b.problem}" for b in report.bad_records}
    assert "a record without 'id' cannot be merged" in bad["conversations", False]
    assert "no id" in bad["conversations", False]
    assert bad["conversations", True] == f"conv_odd: account '{acc}': duration='n/a' unreadable"
    assert "insight insight_q has an unknown type 'question'" in "\n".join(report.warnings)
    assert "crm_deal_id" in pipeline.default_schema.tables["conversations"]["columns"]


def test_accounts_come_from_a_single_pair_a_list_or_an_env_var(monkeypatch) -> None:
    assert [a.account_id for a in parse_accounts("key_123456", "acc_1", None)] == ["acc_1"]
    listed = parse_accounts(None, None, [{"account_id": "acc_1", "api_key": "k1"},
                                         {"account_id": "acc_2", "api_key": "k2"}])
    assert [a.account_id for a in listed] == ["acc_1", "acc_2"]
    both = parse_accounts("k3", "acc_3", '[{"account_id": "acc_1", "api_key": "k1"}]')
    assert [a.account_id for a in both] == ["acc_1", "acc_3"]
    tables = parse_accounts(None, None, {"sales": {"account_id": "acc_s", "api_key": "ks"}})
    assert tables[0].account_id == "acc_s" and "ks" not in repr(tables[0])
    with pytest.raises(ConfigError, match="no account configured"):
        parse_accounts(None, None, None)
    with pytest.raises(ConfigError, match="'api_key' is not set"):
        parse_accounts(None, "acc_1", None)
    with pytest.raises(ConfigError, match="entry #1 needs both") as missing:
        parse_accounts(None, None, [{"account_id": "acc_1", "token": "secret_value_1"}])
    assert "secret_value_1" not in str(missing.value)
    with pytest.raises(ConfigError, match="configured twice"):
        parse_accounts(None, None, [{"account_id": "a", "api_key": "k1"}, {"account_id": "a", "api_key": "k2"}])
    monkeypatch.setenv("SOURCES__MEETRIC__BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SOURCES__MEETRIC__ACCOUNTS", '[{"account_id": "acc_env", "api_key": "key_env_1"}]')
    source = meetric()
    assert set(source.selected_resources) == set(TABLES)  # a resource per table (the feeds are not tables)
    with pytest.raises(ConfigError, match="page_size"):
        meetric(page_size=101)
