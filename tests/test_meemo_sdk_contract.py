"""The Meemo simulator against the vendor's own SDK (`meemo` 0.0.10, requirements-meemo-sdk.txt).

The SDK's client (`MeemoClient`) calls every read endpoint of the simulator over HTTP, and its
pydantic models parse every kind of answer the simulator serves: meetings of older builds
(no stage objects, no `organization_id`) next to current ones, details without `host_name`,
recordings with `assets` and old-build ones with only a media path, webhook logs with and
without `next`, upcoming meetings with and without a connected calendar, and the three error
body shapes, read by the SDK's own error mapping. A field the simulator renames or retypes
fails here, so the simulator cannot drift from what the vendor's client expects.
"""

from __future__ import annotations

import inspect
import os

import pytest

from simulators.meemo import MeemoSimulator

try:
    import meemo
    from meemo import MeemoClient
    from meemo.exceptions import (
        MeemoAuthError,
        MeemoNotFoundError,
        MeemoRateLimitError,
        MeemoValidationError,
    )
except ImportError:  # pragma: no cover - the README's test command installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("the Meemo SDK is not installed: .venv/bin/pip install --no-deps -r requirements-meemo-sdk.txt",
                allow_module_level=True)


@pytest.fixture
def sdk_and_sim(start_sim):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=6, upcoming=1, legacy=1, webhooks=2,
                    events=(12, 14), processing_share=0.3, seed=40)
    client = MeemoClient(client_id=sim.client_id, client_secret=sim.client_secret, base_url=sim.base_url)
    return client, sim


def read_methods() -> set[str]:
    """Every read method of the SDK's services (the write ones create or delete)."""
    services = {"meetings": meemo.meetings.Meetings, "webhooks": meemo.webhooks.Webhooks,
                "usage": meemo.usage.Usage, "calendar": meemo.calendar.Calendar}
    return {f"{name}.{attr}" for name, cls in services.items() for attr, _ in inspect.getmembers(cls, inspect.isfunction)
            if attr.startswith(("get_", "list_", "find_"))}


def test_every_read_method_of_the_sdk_parses_the_simulators_answers(sdk_and_sim):
    client, sim = sdk_and_sim
    called: set[str] = set()

    def call(name: str, *args, **kwargs):
        service, method = name.split(".")
        called.add(name)
        return getattr(getattr(client, service), method)(*args, **kwargs)

    # meetings: every page, old builds and current ones side by side
    listed, page = [], 1
    while True:
        answer = call("meetings.list_meetings", size=5, page=page)
        listed += answer.results
        if answer.next is None:
            break
        page += 1
    assert {m.id for m in listed} == {m.id for m in sim.visible()} and answer.count == len(listed)
    assert {m.transcription is None for m in listed} == {True, False}
    old = [m for m in sim.visible() if m.old_build]
    assert old and all(m.calendar_event is None or m.calendar_event.event_id for m in listed)
    one_org = call("meetings.list_meetings", organization_id=2, status="past", size=100)
    assert {m.id for m in one_org.results} == {m.id for m in sim.visible({2}) if m.status == "past"}
    with_event = next(m for m in sim.visible() if m.calendar_event)
    found = call("meetings.find_meeting_by_calendar_event_id", with_event.calendar_event["event_id"])
    assert found is not None and found.id == with_event.id

    shapes = {"no_stages": 0, "no_host_name": 0, "transcript": 0, "legacy_summary": 0, "markdown_summary": 0,
              "video_citations": 0, "assets": 0, "old_recording": 0}
    for m in sim.visible():
        detail = call("meetings.get_meeting", m.id)
        assert (detail.id, detail.host.email, detail.summary_complete) == (m.id, m.host["email"], m.summary_complete)
        shapes["no_stages"] += detail.transcription is None and m.old_build
        shapes["no_host_name"] += "host_name" not in sim.detail(m)
        transcript = call("meetings.get_transcript", m.id)
        assert [s.text for s in transcript.transcripts] == [s["text"] for s in sim.served_segments(m)]
        shapes["transcript"] += bool(transcript.transcripts)
        summary = call("meetings.get_summary", m.id)
        shapes["legacy_summary"] += isinstance(summary.summary, dict)
        shapes["markdown_summary"] += isinstance(summary.summary, str)
        rich = call("meetings.get_summary_with_video", m.id)
        assert rich.video_id == f"video_meeting_{m.id}"
        shapes["video_citations"] += bool(rich.citations) and rich.has_video and rich.video_url is not None
        people = call("meetings.get_participants", m.id)
        assert people.total_participants == len(people.participants) == len(m.participants)
        if m.has_recording and (m.stages["recording"] or {}).get("status") == "completed":
            recording = call("meetings.get_recording", m.id)
            shapes["assets"] += bool(recording.assets) and recording.video_url is not None
            shapes["old_recording"] += not recording.assets and recording.recording_url.startswith("/media/")
    assert all(shapes.values()), shapes

    topics = call("meetings.list_topics", organization_id=1)
    assert {t.id for t in topics} == {t["id"] for t in sim.topics[1]}
    assert {o.id for o in call("webhooks.list_available_organizations")} == set(sim.orgs)

    hooks = call("webhooks.list_webhooks")
    assert {h.id for h in hooks.results} == set(sim.webhooks)
    for hook in hooks.results:
        detail = call("webhooks.get_webhook", hook.id)
        assert (detail.failure_count, detail.last_failure_reason) == \
            (sim.webhooks[hook.id]["failure_count"], sim.webhooks[hook.id]["last_failure_reason"])
        events = call("webhooks.list_webhook_events", webhook_id=hook.id)
        assert events.results and {e.status for e in events.results} <= {"SUCCESS", "FAILED"}
        event = call("webhooks.get_webhook_event", events.results[0].id)
        assert event.webhook_id == hook.id and event.event_uuid.startswith("evt_")
    assert {h["old_build"] for h in sim.webhooks.values()} == {True, False}  # logs with and without `next`

    usage = call("usage.get_usage", organization_id=1)  # no dates: the current month
    assert {u.capability_name for u in usage.results} >= {"speech-to-text", "summarization:input", "ai-chat:output"}
    assert {u.quota is None for u in usage.results} == {True, False}
    dated = call("usage.get_usage", start_date="2026-01-01", end_date="2026-12-31")
    assert {u.organization_id for u in dated.results} == set(sim.orgs)

    connected = call("calendar.get_upcoming_meetings", limit=100)
    assert connected.integrated and {e.id for e in connected.results} == set(sim.calendar_events)
    unconnected = call("calendar.get_upcoming_meetings", organization_id=2)
    assert (unconnected.integrated, unconnected.results) == (False, [])

    assert called == read_methods(), f"read methods not exercised: {read_methods() - called}"


def test_the_sdks_error_mapping_reads_the_simulators_three_error_shapes(sdk_and_sim):
    client, sim = sdk_and_sim
    with pytest.raises(MeemoNotFoundError) as drf:  # DRF: {"detail": "..."}
        client.meetings.get_meeting(999_999)
    assert drf.value.message == "Not found."
    with pytest.raises(MeemoNotFoundError) as newer:  # {"error": {code, message, request_id}}
        client.meetings.get_summary_with_video(999_999)
    assert (newer.value.api_code, newer.value.message) == ("meeting_not_found", "Meeting not found.")
    assert newer.value.request_id.startswith("req_")
    with pytest.raises(MeemoValidationError) as listed:  # DRF: {"detail": [{"loc", "msg", "type"}]}
        client.calendar.get_upcoming_meetings(limit=500)
    assert "between 1 and 100" in listed.value.message
    with pytest.raises(MeemoValidationError):  # DRF: {"end_date": ["..."]}
        client.usage.get_usage(start_date="2026-05-02", end_date="2026-05-01")
    sim.throttle(1, retry_after_seconds=7)
    with pytest.raises(MeemoRateLimitError) as throttled:  # the wait only in error.recovery
        client.webhooks.list_webhooks()
    assert throttled.value.recovery["retry_after_seconds"] == 7 and "Retry-After" not in throttled.value.response.headers
    wrong = MeemoClient(client_id=sim.client_id, client_secret="mcs_wrong", base_url=sim.base_url)
    with pytest.raises(MeemoAuthError) as oauth:  # OAuth: {"error": "invalid_client", "error_description"}
        wrong.meetings.list_meetings()
    assert (oauth.value.api_code, oauth.value.message) == ("invalid_client", "Client authentication failed.")
