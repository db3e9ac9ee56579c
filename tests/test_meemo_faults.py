"""Meemo under faults: injected 5xx/429/drops/truncations, a run cut short by its request
budget, and the simulator's own HTTP conventions (trailing slashes, pages past the last)."""

from __future__ import annotations

from collections import Counter

import httpx

from simulators.base import Faults
from simulators.meemo import TOKEN_PATH, MeemoSimulator
from sources._common.report import get_report
from tests.test_meemo import loaded, pipeline, source, tables
from tests.utils import run_strict


def _token(sim: MeemoSimulator) -> str:
    answer = httpx.post(sim.base_url + TOKEN_PATH, data={
        "grant_type": "client_credentials", "client_id": sim.client_id, "client_secret": sim.client_secret})
    return answer.json()["access_token"]


def test_injected_faults_leave_the_tables_equal_to_a_clean_run(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=8, processing_share=0.4, seed=30)
    clean, faulty = pipeline(tmp_path, "clean"), pipeline(tmp_path, "faulty")
    run_strict(clean, source(sim, include_recordings=True, page_size=3))
    sim.clear_log()
    sim.faults = Faults(error_5xx=0.10, rate_429=0.05, drop=0.02, truncate=0.02, seed=30)
    run_strict(faulty, source(sim, include_recordings=True, page_size=3))
    injected = Counter(r.fault for r in sim.log if r.fault)
    assert tables(faulty) == tables(clean)
    # late data under faults too: processing meetings finish, one new meeting arrives
    for m in sim.visible():
        if m.status == "past" and not sim.transcript_ready(m):
            sim.complete(m.id)
    sim.add_meeting(2, state="completed")
    sim.faults = Faults()
    run_strict(clean, source(sim, include_recordings=True, page_size=3))
    sim.faults = Faults(error_5xx=0.10, rate_429=0.05, drop=0.02, truncate=0.02, seed=31)
    run_strict(faulty, source(sim, include_recordings=True, page_size=3))
    injected += Counter(r.fault for r in sim.log if r.fault)
    assert tables(faulty) == tables(clean)
    assert sum(injected.values()) >= 20 and {"5xx", "429"} <= set(injected)
    print(f"\ninjected faults over two runs: {dict(injected)}; tables equal a clean run's")


def test_a_run_cut_by_its_request_budget_exits_cleanly_and_the_next_run_converges(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=8, seed=31)
    clean, cut = pipeline(tmp_path, "clean"), pipeline(tmp_path, "cut")
    run_strict(clean, source(sim))
    run_strict(cut, source(sim, http={"max_requests": 30}))  # no exception: a clean stop
    report = get_report("meemo")
    assert report.requests <= 30 and report.waiting
    assert 0 < loaded(cut).get("meetings", 0) < len(sim.visible())
    run_strict(cut, source(sim))
    assert tables(cut) == tables(clean)


def test_simulator_redirects_paths_without_slash_and_refuses_pages_past_the_last(start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=5, upcoming=0, legacy=0, seed=32)
    headers = {"Authorization": f"Bearer {_token(sim)}"}
    with httpx.Client(base_url=sim.base_url, headers=headers) as client:
        moved = client.get("/api/v1/external/meeting", params={"size": 2})
        assert moved.status_code == 301 and moved.headers["Location"].endswith("/meeting/?size=2")
        first = client.get("/api/v1/external/meeting/", params={"size": 2}).json()
        assert first["count"] == 5 and first["next"].startswith("http://") and "size=2" in first["next"]
        past = client.get("/api/v1/external/meeting/", params={"size": 2, "page": 4})
        assert (past.status_code, past.json()) == (404, {"detail": "Invalid page."})
        big = client.get("/api/v1/external/meeting/", params={"size": 500}).json()
        assert len(big["results"]) == 5 and big["next"] is None  # size is capped at 100, silently
        assert client.get("/api/v1/external/meeting/", headers={"Authorization": "Bearer x"}).status_code == 401
