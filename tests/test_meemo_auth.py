"""Meemo OAuth 2 client credentials: token reuse, renewal mid-run, bad credentials, and
secrets (client secret, tokens, webhook signing secrets) kept out of everything."""

from __future__ import annotations

import logging

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.runner import explain
from simulators.base import Faults
from simulators.meemo import TOKEN_PATH, MeemoSimulator
from sources._common.errors import AuthError
from sources._common.report import get_report
from sources.meemo import check, meemo
from tests.test_meemo import HTTP, pipeline, source, tables
from tests.utils import grep_tree, run_strict


def test_token_is_fetched_once_and_reused_for_the_whole_run(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=6, seed=20)
    run_strict(pipeline(tmp_path), source(sim))
    assert len(sim.requests("POST", TOKEN_PATH)) == 1
    assert len(sim.requests("GET")) > 20
    assert sim.status_counts()[401] == 0


def test_expired_token_is_renewed_mid_run_without_failing(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=5, seed=21)
    clean = pipeline(tmp_path, "clean")
    run_strict(clean, source(sim))
    sim.clear_log()
    sim.expire_tokens(after_requests=12)  # the vendor expires (revokes) the token mid-run
    renewed = pipeline(tmp_path, "renewed")
    run_strict(renewed, source(sim))
    unauthorized = [r for r in sim.log if r.status == 401]
    assert len(unauthorized) >= 1
    assert len(sim.requests("POST", TOKEN_PATH)) == 2  # one at the start, one after the 401
    assert tables(renewed) == tables(clean)
    print(f"\n{len(unauthorized)} request(s) answered 401 mid-run; token renewed; tables equal a clean run's")


def test_short_lived_tokens_are_renewed_before_they_expire(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=5, token_ttl_seconds=2, seed=22)
    # one slow answer early on outlasts half the token's life
    sim.faults = Faults(script=[None] * 4 + ["slow"], slow_seconds=1.3)
    run_strict(pipeline(tmp_path), source(sim))
    assert len(sim.requests("POST", TOKEN_PATH)) >= 2
    assert sim.status_counts()[401] == 0  # renewed before expiry, never refused


def test_wrong_client_secret_fails_at_once_with_a_clear_message(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=2, seed=23)
    wrong = "mcs_not-the-right-secret-1234"
    config = {**sim.source_config(), "client_secret": wrong}
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline(tmp_path).run(meemo(**config, http=HTTP))
    message = explain(failed.value)
    assert "refused the client credentials (401)" in message and "client_secret" in message
    assert wrong not in message and wrong not in str(failed.value)
    assert len(sim.requests("POST", TOKEN_PATH)) == 1 and not sim.requests("GET")


def test_check_verifies_credentials_and_lists_loadable_tables(start_sim):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=2, seed=24)
    access = check(**sim.source_config(), http=HTTP)
    assert set(access) >= {"organizations", "meetings", "transcript_segments", "summaries", "participants",
                           "recordings", "topics", "webhooks", "webhook_events", "usage", "upcoming_meetings"}
    assert all(why is None for why in access.values())
    assert len(sim.log) <= 7  # one small request per endpoint family, plus the token
    with pytest.raises(AuthError) as refused:
        check(**{**sim.source_config(), "client_secret": "mcs_wrong-secret-000"}, http=HTTP)
    assert "mcs_wrong-secret-000" not in str(refused.value)


def test_no_secret_or_token_reaches_output_logs_tables_or_state(tmp_path, start_sim, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    for name in ("dlt", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    sim = start_sim(MeemoSimulator, organizations=2, meetings=5, token_ttl_seconds=3, seed=25)
    sim.faults = Faults(error_5xx=0.1, seed=25)
    p = pipeline(tmp_path)
    sim.expire_tokens(after_requests=10)
    run_strict(p, source(sim, include_recordings=True))
    sim.expire_tokens()
    run_strict(p, source(sim, include_recordings=True, sweep_interval_hours=0))
    with pytest.raises(PipelineStepFailed) as failed:  # and a failing run's messages
        pipeline(tmp_path, "failing").run(meemo(**{**sim.source_config(), "client_secret": "mcs_bad-000000"},
                                                http=HTTP))
    report = get_report("meemo")
    secrets = [sim.client_secret, *sim.tokens_issued, *(h["secret_key"] for h in sim.webhooks.values())]
    assert len(sim.tokens_issued) >= 3 and caplog.records
    out = capsys.readouterr()
    texts = [caplog.text, out.out, out.err, str(failed.value), explain(failed.value), repr(report),
             repr(p.state)]
    with p.sql_client() as client, client.execute_query("SELECT * FROM webhooks") as cur:
        texts.append(repr(cur.fetchall()))
    for secret in secrets:
        assert not any(secret in text for text in texts)
        assert grep_tree(tmp_path, secret) == []
    assert "secret_key" not in {c for rows in tables(p).values() for r in rows for c in r}
