"""The Meetric workspace simulator against what the API is documented to send.

No SDK, OpenAPI file or client code of this API is public (looked for: the docs, code and
pages corpora, and repositories named like it); the public material is the vendor page
(meetric.com/documentation/api, its copy in api-docs/meetric-workspace-api.txt), whose JSON
examples are read here as they stand, and observed-responses.md §1, which wins over it
and covers the endpoints the page shows no example for.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from simulators import meetric_data
from simulators.meetric import MeetricSimulator
from tests.documented_shapes import example_after, mismatches, page

VENDOR = page("meetric-workspace-api.txt")
OBSERVED = page("observed-responses.md").split("## 1. Meetric workspace API", 1)[1].split("\n## 2.", 1)[0]

PAGINATION = {"total": 150, "limit": 20, "offset": 0, "has_more": True}
# observed-responses.md §1, written out as examples where neither page has one
ACTION_ITEMS = {"data": [{"id": "ai_1", "conversation_id": "conv_abc123", "content": "Send the specs",
                          "assigned_to": "user_456", "due_date": "2024-01-20", "status": "pending",
                          "created_at": "2024-01-15T11:00:00Z", "updated_at": "2024-01-16T09:00:00Z"}],
                "pagination": PAGINATION}
USERS = {"data": [{"id": "user_123", "name": "John Smith", "email": "john@example.com", "role": "manager",
                   "team_id": "team_1", "department_id": "dept_1", "is_active": True,
                   "created_at": "2023-03-01T09:00:00Z"}],
         "pagination": PAGINATION}
MANAGERS = {"data": [{"user_id": "user_123", "name": "John Smith", "email": "john@example.com",
                      "assigned_at": "2023-06-01T09:00:00Z"}]}
SUMMARY = {"data": {"period_start": "2024-01-08", "period_end": "2024-01-14", "total_conversations": 12,
                    "total_duration": 30600, "avg_sentiment": 0.71, "action_items_open": 20,
                    "action_items_completed": 11, "top_topics": ["pricing", "security"]}}


def documented() -> dict[str, Any]:
    """{endpoint: its documented answer}: the vendor page's examples, then observed-responses."""
    conversations = example_after(VENDOR, "List Conversations#")
    detail = {"data": {**conversations["data"][0], "insights_count": 8, "action_items_count": 3}}
    return {
        "conversations": conversations,
        "conversation": detail,
        "insights": example_after(VENDOR, "Get Insights#"),
        "errors": example_after(VENDOR, "Error Response Format#"),
        "insight_trends": example_after(OBSERVED, "### GET /insights/trends"),
        "insight_summary": SUMMARY,
        "action_items": ACTION_ITEMS,
        "users": USERS,
        "team_managers": MANAGERS,
        "department_managers": MANAGERS,
    }


def served(sim: MeetricSimulator) -> dict[str, list[Any]]:
    """The simulator's answers, endpoint by endpoint, as the API's clients get them."""
    account = sim.accounts[sim.account_ids[0]]
    headers = {"Authorization": f"Bearer {account.key}", "X-Account-ID": account.id}
    today = sim.now().date()
    with httpx.Client(base_url=f"{sim.base_url}/api/v1", headers=headers) as client:
        def get(path: str, **params: Any) -> Any:
            answer = client.get(path, params=params)
            return answer.json()

        users = get("users", limit=100)
        conversations = get("conversations", limit=100)
        team = next(u["team_id"] for u in users["data"] if u["team_id"])
        return {
            "conversations": [conversations],
            "conversation": [get(f"conversations/{c['id']}") for c in conversations["data"][:5]],
            "insights": [get("insights", limit=100)],
            "errors": [get("conversations", limit=101), get("insights/trends")],
            "insight_trends": [get("insights/trends", start_date=(today - timedelta(days=30)).isoformat(),
                                   end_date=today.isoformat(), interval="day")],
            "insight_summary": [get("insights/summary", start_date=(today - timedelta(days=7)).isoformat(),
                                    end_date=today.isoformat())],
            "action_items": [get("action-items", limit=100)],
            "users": [users],
            "team_managers": [get(f"teams/{team}/managers")],
            "department_managers": [get(f"departments/{users['data'][0]['department_id']}/managers")],
        }


@pytest.fixture
def sim(start_sim) -> MeetricSimulator:
    return start_sim(MeetricSimulator, conversations=30, users=8, rate_limit=None, seed=51)


def test_every_answer_has_the_documented_key_paths_and_value_types(sim):
    answers = served(sim)
    problems = {name: found for name, example in documented().items()
                if (found := mismatches(example, answers[name]))}
    assert problems == {}


def test_a_renamed_field_fails_the_contract(sim, monkeypatch):
    # `duration` served as `duration_seconds`: the contract names the path it misses
    render = meetric_data.render

    def renamed(record: dict) -> dict:
        out = render(record)
        if "duration" in out:
            out["duration_seconds"] = out.pop("duration")
        return out

    monkeypatch.setattr("simulators.meetric.render", renamed)
    found = mismatches(documented()["conversations"], served(sim)["conversations"])
    assert found == ["data[].duration: documented, not served"]
