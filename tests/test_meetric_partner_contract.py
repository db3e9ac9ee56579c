"""The partner simulator against what the API is documented to send.

No public SDK or OpenAPI file of the Meetric partner API could be found (the vendor page
points to an `openapi.json` on the account's own host). So the simulator is held to the
two texts there are: section 2 of `observed-responses.md` and the vendor page
`meetric-partner-rest-api.txt` (its transcript, error and limits examples). Every key path
listed there must be served, with the documented JSON type; a simulator that drifts from
them (a renamed or retyped field) fails here. Fields not listed are allowed: real answers
carry them too.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from simulators.meetric_partner import ALL_SCOPES, PREFIX, MeetricPartnerSimulator
from sources._common.records import read_instant


@dataclass(frozen=True)
class Kind:
    name: str
    accepts: Callable[[Any], bool]


TEXT = Kind("text", lambda v: isinstance(v, str))
INT = Kind("integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
NUMBER = Kind("number", lambda v: isinstance(v, int | float) and not isinstance(v, bool))
BOOL = Kind("boolean", lambda v: isinstance(v, bool))
LIST = Kind("list", lambda v: isinstance(v, list))
OBJECT = Kind("object", lambda v: isinstance(v, dict))
INSTANT = Kind("ISO 8601 instant", lambda v: isinstance(v, str) and read_instant(v) is not None)
UUID = Kind("UUID", lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", v))


def one_of(*values: Any) -> Kind:
    return Kind(f"one of {values}", lambda v: v in values)


META = {"_meta": OBJECT, "_meta.token_prefix": TEXT, "_meta.timestamp": INSTANT}
PEOPLE = {"id": UUID, "name": TEXT, "email": TEXT}
LIST_ITEM = {
    "id": UUID, "title": TEXT, "company": TEXT, "date": INSTANT, "duration": INT,
    "medium": one_of("call", "video", "chat"), "sentiment": one_of("positive", "neutral", "negative"),
    "conversation_type": TEXT, "status": one_of("processing", "completed", "failed"),
    "department": OBJECT, "department.id": UUID, "department.name": TEXT,
    "user": OBJECT, **{f"user.{k}": v for k, v in PEOPLE.items()},
    "participants": LIST, "participants[].name": TEXT, "participants[].email": TEXT, "participants[].role": TEXT,
    "updated_at": INSTANT,
}
SENTENCES = {"sentences": LIST, "sentences[].speaker_name": TEXT, "sentences[].start": NUMBER,
             "sentences[].end": NUMBER, "sentences[].text": TEXT}
MESSAGES = {"messages": LIST, "messages[].sender": TEXT, "messages[].sent_at": INSTANT, "messages[].content": TEXT}
INSIGHTS = {"insights": LIST, "insights[].id": UUID,
            "insights[].type": one_of("action_item", "question", "objection", "next_step", "decision"),
            "insights[].text": TEXT, "insights[].speaker_name": TEXT, "insights[].start": NUMBER,
            "topics": LIST, "topics[].name": TEXT, "topics[].mentions": INT, "topics[].share": NUMBER}


def under(prefix: str, paths: dict[str, Kind]) -> dict[str, Kind]:
    return {f"{prefix}{p}": k for p, k in paths.items()}


# path → kind, endpoint by endpoint (section 2 of observed-responses.md)
CONTRACT: dict[str, dict[str, Kind]] = {
    "account": {"account.id": UUID, "account.name": TEXT, "account.domain": TEXT, "account.timezone": TEXT,
                "account.branding.logo_url": TEXT, "account.branding.primary_color": TEXT, **META},
    "users": {**under("users[].", PEOPLE), "users[].role": TEXT, "users[].department_id": UUID,
              "users[].team_ids": LIST, "users[].team_ids[]": UUID, "users[].created_at": INSTANT, **META},
    "teams": {"teams[].id": UUID, "teams[].name": TEXT, "teams[].department_id": UUID, "teams[].members": LIST,
              **under("teams[].members[].", PEOPLE), "teams[].members[].role": TEXT, **META},
    "departments": {"departments[].id": UUID, "departments[].name": TEXT, "departments[].created_at": INSTANT,
                    **META},
    "conversations": {**under("conversations[].", LIST_ITEM), "pagination.next_cursor": TEXT,
                      "pagination.has_more": BOOL, **META},
    "detail": {**under("conversation.", LIST_ITEM), "conversation.summary": TEXT, "conversation.transcript": OBJECT,
               **under("conversation.transcript.", SENTENCES), **under("conversation.", INSIGHTS), **META},
    "transcript (call)": {"conversation_id": UUID, **under("transcript.", SENTENCES), **META},
    "transcript (chat)": {"conversation_id": UUID, **under("transcript.", MESSAGES), **META},
    "insights": {"conversation_id": UUID, **INSIGHTS, **META},
    "summary": {"conversation_id": UUID, "summary": TEXT, "updated_at": INSTANT, **META},
    "recording-url": {"conversation_id": UUID, "recording_url": TEXT, "expires_at": INSTANT, **META},
    "webhooks/deliveries": {"deliveries[].id": UUID, "deliveries[].event": TEXT, "deliveries[].conversation_id": UUID,
                            "deliveries[].status": one_of("delivered", "failed", "pending"),
                            "deliveries[].response_status": INT, "deliveries[].attempts": INT,
                            "deliveries[].created_at": INSTANT, "deliveries[].last_attempt_at": INSTANT, **META},
}
ERROR = {"statusCode": INT, "message": TEXT, "error": TEXT}


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key path, value) of an answer; list items are `path[]`."""
    if path:
        yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item, f"{path}[]")


def violations(answers: list[Any], contract: dict[str, Kind]) -> list[str]:
    """What in `answers` breaks `contract`: a documented path never served, or served with
    another type. Any field may be null in a given record (the docs say so), but each must
    be served with a value somewhere in the sample."""
    served: dict[str, list] = defaultdict(list)
    for answer in answers:
        for path, value in walk(answer):
            served[path].append(value)
    out = []
    for path, kind in contract.items():
        values = [v for v in served.get(path, []) if v is not None]
        if not values:
            out.append(f"{path}: never served")
        elif wrong := [v for v in values if not kind.accepts(v)]:
            out.append(f"{path}: {wrong[0]!r} is not {kind.name}")
    return out


@pytest.fixture(scope="module")
def sim() -> Iterator[MeetricPartnerSimulator]:
    sim = MeetricPartnerSimulator(conversations=40, seed=51, requests_per_minute=None, daily_quota=None)
    sim.start()
    yield sim
    sim.stop()


def client(sim: MeetricPartnerSimulator, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=sim.base_url + PREFIX, headers={"Authorization": f"Bearer {token or sim.token}"})


def answers(sim: MeetricPartnerSimulator) -> dict[str, list[Any]]:
    """A sample of every endpoint's answers, as served over HTTP."""
    out: dict[str, list] = defaultdict(list)
    with client(sim) as api:
        for path in ("account", "users", "teams", "departments", "webhooks/deliveries"):
            out[path].append(api.get(path).json())
        cursor = None
        while True:
            page = api.get("conversations", params={"limit": 10, **({"cursor": cursor} if cursor else {})}).json()
            out["conversations"].append(page)
            cursor = page["pagination"]["next_cursor"]
            if not page["pagination"]["has_more"]:
                break
        done = [c for c in sim.visible() if c.status == "completed"]
        for conv in done[:12]:
            chat = conv.medium == "chat"
            if not chat:
                out["detail"].append(api.get(f"conversations/{conv.id}", params={
                    "include_transcript": "true", "include_insights": "true"}).json())
            out[f"transcript ({'chat' if chat else 'call'})"].append(api.get(f"conversations/{conv.id}/transcript").json())
            out["insights"].append(api.get(f"conversations/{conv.id}/insights").json())
            out["summary"].append(api.get(f"conversations/{conv.id}/summary").json())
        recorded = next(c for c in done if c.has_recording)
        out["recording-url"].append(api.get(f"conversations/{recorded.id}/recording-url").json())
    return out


def test_every_answer_serves_the_documented_key_paths_and_types(sim):
    served = answers(sim)
    assert set(served) == set(CONTRACT)
    problems = {endpoint: violations(served[endpoint], contract) for endpoint, contract in CONTRACT.items()}
    assert problems == {endpoint: [] for endpoint in CONTRACT}


def test_the_detail_embeds_the_same_transcript_and_insights_as_their_endpoints(sim):
    conv = next(c for c in sim.visible() if c.status == "completed")
    with client(sim) as api:
        detail = api.get(f"conversations/{conv.id}",
                         params={"include_transcript": "true", "include_insights": "true"}).json()["conversation"]
        assert detail["transcript"] == api.get(f"conversations/{conv.id}/transcript").json()["transcript"]
        insights = api.get(f"conversations/{conv.id}/insights").json()
        assert (detail["insights"], detail["topics"]) == (insights["insights"], insights["topics"])
        plain = api.get(f"conversations/{conv.id}").json()["conversation"]
        assert "transcript" not in plain and "insights" not in plain  # only when asked for


def test_the_list_pages_by_cursor_newest_first_within_30_days(sim):
    with client(sim) as api:
        items, cursor = [], None
        while True:
            page = api.get("conversations", params={"limit": 7, **({"cursor": cursor} if cursor else {})}).json()
            items += page["conversations"]
            cursor = page["pagination"]["next_cursor"]
            if not page["pagination"]["has_more"]:
                assert cursor is None
                break
        keys = [(read_instant(i["date"]), i["id"]) for i in items]
        assert keys == sorted(keys, reverse=True)
        assert min(k[0] for k in keys) >= sim.now() - timedelta(days=30)
        assert api.get("conversations", params={"limit": 26}).status_code == 400


def test_errors_have_the_documented_shapes_and_messages(sim):
    with client(sim, "mt_not_a_token") as api:
        unauthorized = api.get("account")
    assert unauthorized.status_code == 401 and violations([unauthorized.json()], ERROR) == []
    with client(sim, sim.add_token(scopes=ALL_SCOPES - {"transcripts"})) as api:
        conv = sim.visible()[0]
        forbidden = api.get(f"conversations/{conv.id}/transcript")
    assert forbidden.status_code == 403
    assert forbidden.json() == {"statusCode": 403, "message": "Token does not have the 'transcripts' scope",
                                "error": "Forbidden"}  # the vendor page's example, word for word
    with client(sim) as api:
        too_early = api.get("conversations", params={"from": (sim.now() - timedelta(days=31)).isoformat()})
    assert too_early.status_code == 400 and too_early.json()["message"] == "from must be within the last 30 days"


def test_a_429_carries_retry_after_in_the_header_and_the_body(start_sim):
    limited = start_sim(MeetricPartnerSimulator, conversations=5, seed=52, requests_per_minute=2, daily_quota=1)
    with client(limited) as api:
        minute = [api.get("account") for _ in range(3)][-1]
    assert minute.status_code == 429
    assert violations([minute.json()], {**ERROR, "retryAfter": INT}) == []
    assert minute.json()["message"] == "Rate limit exceeded. Please try again later."  # the vendor page's public copy (meetric.com/documentation/api)
    assert int(minute.headers["Retry-After"]) == minute.json()["retryAfter"] > 0

    limited.requests_per_minute = None
    first, second = [c.id for c in limited.visible()[:2]]
    with client(limited) as api:
        assert api.get(f"conversations/{first}").status_code == 200
        quota = api.get(f"conversations/{second}")
        assert api.get(f"conversations/{first}").status_code == 200  # touched today: still readable
    assert quota.status_code == 429 and quota.json()["message"] == "Daily conversation quota exceeded"
    now = limited.now()
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    assert abs(int(quota.headers["Retry-After"]) - (midnight - now).total_seconds()) < 5  # to the next UTC midnight
    assert quota.json()["retryAfter"] == int(quota.headers["Retry-After"])


def test_the_contract_check_fails_when_a_served_field_is_renamed(sim):
    with client(sim) as api:
        conv = next(c for c in sim.visible() if c.status == "completed" and c.medium != "chat")
        answer = api.get(f"conversations/{conv.id}/transcript").json()
    assert violations([answer], CONTRACT["transcript (call)"]) == []
    for sentence in answer["transcript"]["sentences"]:
        sentence["speaker"] = sentence.pop("speaker_name")  # a simulator drifting from the docs
    assert violations([answer], CONTRACT["transcript (call)"]) == ["transcript.sentences[].speaker_name: never served"]
    answer["transcript"]["sentences"][0]["start"] = "0.84"
    assert "transcript.sentences[].start: '0.84' is not number" in violations([answer], CONTRACT["transcript (call)"])

