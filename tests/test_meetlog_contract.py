"""The meetlog simulator against what the Export API is documented to send.

No SDK, client code or copy of the page's machine-readable spec (`export-api.yaml`) is
public (looked for: the docs, code and pages corpora, repositories named like it); the
public material is the vendor page (meetlog.ru/ru/api-docs, its copy in
api-docs/meetlog-export-api.txt), whose JSON example of every endpoint is read here as it
stands.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulators.meetlog import MeetlogSimulator
from tests.documented_shapes import example_after, mismatches, page

VENDOR = page("meetlog-export-api.txt")
ENDPOINTS = {  # endpoint: the markers that lead to its example on the page
    "transcripts": ("GET/api/v1/export/transcripts\n", "Response · 200"),
    "transcript": ("GET/api/v1/export/transcripts/{id}\n", "Response · 200"),
    "reports": ("GET/api/v1/export/reports\n", "Response · 200"),
    "report": ("GET/api/v1/export/reports/{id}\n", "Response · 200"),
    "projects": ("GET/api/v1/export/projects\n", "Response · 200"),
    "project": ("GET/api/v1/export/projects/{id}\n", "Response · 200"),
    "errors": ("Ошибки", "json"),
}


def documented() -> dict[str, Any]:
    return {name: example_after(VENDOR, *markers) for name, markers in ENDPOINTS.items()}


def served(sim: MeetlogSimulator) -> dict[str, list[Any]]:
    """The simulator's answers, endpoint by endpoint, as the API's clients get them."""
    with httpx.Client(base_url=f"{sim.base_url}/api/v1/export",
                      headers={"Authorization": f"Bearer {sim.token}"}) as client:
        def get(path: str, token: str | None = None, **params: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else None
            return client.get(path, params=params, headers=headers).json()

        lists = {name: get(name, page_size=100) for name in ("transcripts", "reports", "projects")}
        completed = [t for t in lists["transcripts"]["items"] if t["status"] == "completed"]
        no_reports = sim.add_token(scopes={"export:transcripts"})
        return {
            **{name: [body] for name, body in lists.items()},
            "transcript": [get(f"transcripts/{t['id']}") for t in completed[:5]],
            "report": [get(f"reports/{r['id']}") for r in lists["reports"]["items"][:5]],
            "project": [get(f"projects/{p['id']}") for p in lists["projects"]["items"]],
            "errors": [get("reports", token=no_reports), get("transcripts", token="tk_live_nope")],
        }


@pytest.fixture
def sim(start_sim) -> MeetlogSimulator:
    return start_sim(MeetlogSimulator, transcripts=30, projects=3, seed=52, requests_per_minute=None)


def test_every_answer_has_the_documented_key_paths_and_value_types(sim):
    answers = served(sim)
    problems = {name: found for name, example in documented().items()
                if (found := mismatches(example, answers[name]))}
    assert problems == {}


def test_a_renamed_field_fails_the_contract(sim, monkeypatch):
    # `duration_seconds` served as `duration`: the contract names the path it misses
    fields = MeetlogSimulator._transcript_fields

    def renamed(self, t):
        out = fields(self, t)
        out["duration"] = out.pop("duration_seconds")
        return out

    monkeypatch.setattr(MeetlogSimulator, "_transcript_fields", renamed)
    answers = served(sim)
    assert mismatches(documented()["transcripts"], answers["transcripts"]) == [
        "items[].duration_seconds: documented, not served"]
    assert mismatches(documented()["transcript"], answers["transcript"]) == [
        "duration_seconds: documented, not served"]
