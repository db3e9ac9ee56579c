"""convo: the simulator answers in the shapes Convo's own material documents.

`fixtures/convo_documented_shapes.json` records, endpoint by endpoint, the key paths and
value types of the vendor's reference pages (docs.itsconvo.com, rendered from its OpenAPI
file), its quickstart, and what its own MCP client reads, each with the URL it came from.
These tests ask the simulator over HTTP, as the source does, and check every answer
against them: a field the simulator renames, drops or serves with another type fails here,
and so does a field the real API does not send.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.convo import ConvoSimulator

SHAPES = json.loads((Path(__file__).parent / "fixtures" / "convo_documented_shapes.json").read_text())
ENDPOINTS = SHAPES["endpoints"]
MISSING = object()
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ------------------------------------------------------------------------------ the checker


def _is(value: Any, kind: str) -> bool:
    if kind.startswith("enum:"):
        return value in kind[5:].split("|")
    if kind == "datetime":
        if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", value):
            return False
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
        except ValueError:
            return False
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "null": lambda v: v is None,
        "date": lambda v: isinstance(v, str) and bool(DATE.match(v)),
        "clock": lambda v: isinstance(v, str) and bool(CLOCK.match(v)),
    }
    return checks[kind](value)


def _split(path: str) -> tuple[str, str]:
    """('data.feedback.topPriority', '~') from 'data.feedback.topPriority~'."""
    return (path[:-1], path[-1]) if path[-1] in "?~" else (path, "")


def _walk(node: Any, steps: list[str], where: str) -> list[tuple[str, Any]]:
    """Every (location, value) the path reaches; MISSING where a key is absent."""
    if not steps:
        return [(where, node)]
    step, rest = steps[0], steps[1:]
    key, each = (step[:-2], True) if step.endswith("[]") else (step, False)
    if key == "*":
        if not isinstance(node, dict):
            return [(where, MISSING)]
        return [hit for k, v in node.items() for hit in _walk(v, rest, f"{where}.{k}")]
    if not isinstance(node, dict) or key not in node:
        return [(f"{where}.{key}", MISSING)]
    value = node[key]
    if not each:
        return _walk(value, rest, f"{where}.{key}")
    if not isinstance(value, list):
        return [(f"{where}.{key}", MISSING)]
    return [hit for i, item in enumerate(value) for hit in _walk(item, rest, f"{where}.{key}[{i}]")]


def contract_failures(answers: list[Any], shape: dict[str, Any], paths: dict | None = None) -> list[str]:
    """What in `answers` (bodies of one endpoint) breaks the documented shape; [] when none."""
    paths = paths if paths is not None else shape["paths"]
    declared = {_split(p)[0]: _split(p)[1] for p in paths}
    failures: list[str] = []
    for raw_path, kinds in paths.items():
        path, mark = _split(raw_path)
        kinds = kinds if isinstance(kinds, list) else [kinds]
        hits = [hit for n, body in enumerate(answers) for hit in _walk(body, path.split("."), f"#{n}")]
        present = [(where, v) for where, v in hits if v is not MISSING]
        absent = [where for where, v in hits if v is MISSING]
        # a key under an optional parent need not be there when the parent is not
        absent = [w for w in absent if not _under_optional(w, path, declared)]
        if mark == "" and absent:
            failures.append(f"{path}: missing at {absent[:3]}")
        if mark == "~" and (not present or not absent):
            failures.append(f"{path}: must be present in some records and absent in others "
                            f"(present {len(present)}, absent {len(absent)})")
        if not present and mark != "?":
            failures.append(f"{path}: never served")
        wrong = [(w, v) for w, v in present if not any(_is(v, k) for k in kinds)]
        if wrong:
            failures.append(f"{path}: expected {' or '.join(kinds)}, got {wrong[:2]}")
    for path, forms in shape.get("values", {}).items():
        numbers = [v for body in answers for _, v in _walk(body, path.split("."), "")
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        seen = {"whole" if isinstance(v, int) else "fractional" for v in numbers}
        if not set(forms) <= seen:
            failures.append(f"{path}: the vendor's example has {forms} values, served only {sorted(seen)}")
    for path in shape.get("absent", []):
        sent = [w for n, body in enumerate(answers) for w, v in _walk(body, path.split("."), f"#{n}")
                if v is not MISSING]
        if sent:
            failures.append(f"{path}: the real API does not send it, served at {sent[:3]}")
    return failures


def _under_optional(where: str, path: str, declared: dict[str, str]) -> bool:
    parts = path.split(".")
    for i in range(1, len(parts)):
        prefix = ".".join(parts[:i])
        if declared.get(prefix) in ("?", "~") and where.count(".") >= i:
            return True
    return False


# ------------------------------------------------------------------------------ the account


@pytest.fixture(scope="module")
def account():
    """One account holding every documented variation, asked over HTTP per tier."""
    sims = {}
    for tier in ("starter", "professional", "enterprise"):
        sim = ConvoSimulator(conversations=24, tier=tier, seed=31, calendar_events=12, webhooks=2,
                             keypoints_share=0.7, feedback_share=0.9, segments=(4, 20))
        sim.start()
        sims[tier] = sim
    yield sims
    for sim in sims.values():
        sim.stop()


def ask(sim: ConvoSimulator, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or sim.api_key}"}
    return httpx.request(method, f"{sim.base_url}/api/v1/{path}", headers=headers, timeout=10, **kw)


def bodies(sim: ConvoSimulator, method: str, kind: str) -> list[dict]:
    out = []
    for conv in sim.visible():
        if getattr(conv, kind) is not None:
            answer = ask(sim, method, f"conversations/{conv.id}/{kind}", json={"forceRefresh": False})
            assert answer.status_code == 200, answer.text
            out.append(answer.json())
    assert out, f"the account has no {kind}"
    return out


def list_bodies(sim: ConvoSimulator) -> list[dict]:
    return [ask(sim, "GET", "conversations", params={"limit": 10, "offset": offset}).json()
            for offset in range(0, len(sim.visible()), 10)]


# ------------------------------------------------------------------------------ endpoint by endpoint


def test_conversation_list_has_the_documented_fields_and_pagination(account):
    assert contract_failures(list_bodies(account["starter"]), ENDPOINTS["GET /conversations"]) == []


def test_transcript_carries_the_conversations_id_as_id_and_segment_instants(account):
    sim = account["starter"]
    answers = [ask(sim, "GET", f"conversations/{c.id}/transcript").json() for c in sim.visible()]
    assert contract_failures(answers, ENDPOINTS["GET /conversations/{id}/transcript"]) == []
    assert all(a["data"]["id"] == c.id for a, c in zip(answers, sim.visible(), strict=True))


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_keypoints_answer_has_the_documented_shape_without_ids_of_their_own(account, method):
    sim = account["professional"]
    answers = bodies(sim, method, "keypoints")
    shape = ENDPOINTS[f"{method} /conversations/{{id}}/keypoints"]
    base = ENDPOINTS["GET /conversations/{id}/keypoints"]
    paths = {**base["paths"], **shape["paths"]} if "same_as" in shape else None
    assert contract_failures(answers, {**base, **shape}, paths) == []


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_feedback_is_nested_with_whole_and_fractional_scores_and_top_priority_on_some(account, method):
    sim = account["professional"]
    answers = bodies(sim, method, "feedback")
    shape = ENDPOINTS[f"{method} /conversations/{{id}}/feedback"]
    base = ENDPOINTS["GET /conversations/{id}/feedback"]
    paths = {**base["paths"], **shape["paths"]} if "same_as" in shape else None
    assert contract_failures(answers, {**base, **shape}, paths) == []
    assert len(answers) >= 4  # enough for the variations to show


def test_calendar_events_have_start_and_end_objects_and_meeting_link_on_some(account):
    sim = account["starter"]
    answer = ask(sim, "GET", "calendar/events", params={"maxResults": 50, "timeMin": "2000-01-01T00:00:00Z"})
    assert contract_failures([answer.json()], ENDPOINTS["GET /calendar/events"]) == []
    assert len(answer.json()["data"]) == len(sim.events)
    # timeMax, which the vendor's MCP client sends, bounds the answer
    cut = sorted(start for start, _ in sim.event_times.values())[5]
    bounded = ask(sim, "GET", "calendar/events", params={"maxResults": 50, "timeMin": "2000-01-01T00:00:00Z",
                                                         "timeMax": cut.isoformat()}).json()["data"]
    assert len(bounded) == 5


@pytest.mark.parametrize("tier", ["starter", "professional"])
def test_profile_has_profile_subscription_and_ai_usage_but_no_id_or_top_level_tier(account, tier):
    sim = account[tier]
    body = ask(sim, "GET", "user/profile").json()
    assert contract_failures([body], ENDPOINTS["GET /user/profile"]) == []
    assert body["data"]["subscription"]["tier"] == tier


def test_enterprise_profile_has_null_ai_limit_and_remaining(account):
    shape = ENDPOINTS["GET /user/profile"]
    body = ask(account["enterprise"], "GET", "user/profile").json()
    assert contract_failures([body], shape, {**shape["paths"], **shape["enterprise"]["paths"]}) == []


def test_webhooks_list_has_no_secret(account):
    sim = account["professional"]
    assert contract_failures([ask(sim, "GET", "webhooks").json()], ENDPOINTS["GET /webhooks"]) == []


# ------------------------------------------------------------------------------ headers and errors


@pytest.mark.parametrize("tier", ["starter", "professional"])
def test_answers_carry_rate_limit_headers_with_the_tiers_limit(account, tier):
    spec = SHAPES["rate_limit_headers"]
    for path in ("user/profile", "conversations", "calendar/events"):
        headers = ask(account[tier], "GET", path).headers
        for name, kind in spec["headers"].items():
            assert name in headers and _is(int(headers[name]), kind), (path, name)
        assert int(headers["X-RateLimit-Limit"]) == spec["limits"][tier]


def test_enterprise_answers_carry_no_rate_limit_headers(account):
    headers = ask(account["enterprise"], "GET", "conversations").headers
    assert not [h for h in headers if h.lower().startswith("x-ratelimit")]


def error_failures(answer: httpx.Response, status: int, code: str) -> list[str]:
    spec = SHAPES["errors"]
    failures = contract_failures([answer.json()], {"paths": spec["paths"]})
    if answer.status_code != status:
        failures.append(f"status {answer.status_code}, expected {status}")
    if code not in spec["codes"][str(status)] or answer.json().get("error", {}).get("code") != code:
        failures.append(f"code {answer.json().get('error')}, expected {code}")
    return failures


def test_errors_have_the_documented_codes_and_shape(start_sim):
    sim = start_sim(ConvoSimulator, conversations=4, tier="starter", keypoints_share=0, feedback_share=0,
                    segments=(3, 5), calendar_connected=False, seed=32)
    free = sim.add_key("free")
    conv = sim.visible()[0]
    cases = [
        (ask(sim, "GET", "conversations", key="convo_wrong"), 401, "unauthorized"),
        (ask(sim, "GET", "conversations", key=free), 403, "forbidden"),
        (ask(sim, "GET", "webhooks"), 403, "forbidden"),
        (ask(sim, "GET", f"conversations/{conv.id}/keypoints"), 404, "not_found"),
        (ask(sim, "GET", "conversations/sess_nope/transcript"), 404, "not_found"),
        (ask(sim, "GET", "conversations", params={"limit": 500}), 400, "validation_error"),
        (ask(sim, "GET", "calendar/events"), 400, "validation_error"),
        (ask(sim, "POST", f"conversations/{conv.id}/feedback"), 400, "validation_error"),
    ]
    sim.ai_used[sim.now().strftime("%Y-%m")] = 10  # Starter's 10 a month are spent
    cases.append((ask(sim, "POST", f"conversations/{conv.id}/keypoints", json={}), 429, "ai_limit_exceeded"))
    for answer, status, code in cases:
        assert error_failures(answer, status, code) == [], answer.request.url


def test_rate_limited_answer_has_retry_after_in_seconds(start_sim):
    sim = start_sim(ConvoSimulator, conversations=2, tier="starter", rate_limit=2, seed=33)
    for _ in range(2):
        assert ask(sim, "GET", "user/profile").status_code == 200
    answer = ask(sim, "GET", "user/profile")
    assert error_failures(answer, 429, "rate_limited") == []
    assert 0 < int(answer.headers["Retry-After"]) <= 3600


# ------------------------------------------------------------------------------ the checker itself


def test_the_checker_fails_on_a_renamed_a_retyped_and_an_undocumented_field():
    shape = {"paths": {"data[].segmentCount": "integer", "data[].startTime": "datetime"},
             "absent": ["data[].conversationId"]}
    good = {"data": [{"segmentCount": 3, "startTime": "2026-03-18T14:00:00Z"}]}
    assert contract_failures([good], shape) == []
    renamed = {"data": [{"segment_count": 3, "startTime": "2026-03-18T14:00:00Z"}]}
    retyped = {"data": [{"segmentCount": "3", "startTime": "2026-03-18T14:00:00Z"}]}
    extra = {"data": [{**good["data"][0], "conversationId": "sess_1"}]}
    assert any("missing" in f for f in contract_failures([renamed], shape))
    assert any("expected integer" in f for f in contract_failures([retyped], shape))
    assert any("does not send" in f for f in contract_failures([extra], shape))
