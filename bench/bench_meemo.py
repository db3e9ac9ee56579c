"""Meemo: two organizations of 600 meetings each, limits off.

floor: the same requests with bare httpx: a token, the organizations, every meeting list
page (100 a page), topics, twelve months of usage, webhooks and their delivery logs, then
per meeting its detail and participants, and its transcript and summary (with
summary-with-video) once their stage is completed (older builds: once the meeting is past,
once the summary is complete), each webhook's detail and each organization's upcoming
meetings, with the same concurrency.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import httpx

SOURCE = "meemo"
SIZE_KEY = "meetings"
SIM_KWARGS = {"organizations": 2, "meetings": 600, "upcoming": 5, "legacy": 5, "span_days": 60,
              "webhooks": 3, "events": [20, 60], "processing_share": 0.1}
SIZES = (250, 1000)  # 4x apart: the memory growth is measured between them
CONCURRENCY = 8  # the same for the floor and ours
API = "/api/v1/external/"


def _months(today: date, count: int = 12) -> list[tuple[str, str]]:
    first = today.replace(day=1)
    out = []
    for _ in range(count):
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        out.append((first.isoformat(), last.isoformat()))
        first = (first - timedelta(days=1)).replace(day=1)
    return out


def floor(config: dict, concurrency: int) -> int:
    base = config["base_url"].rstrip("/")
    token = httpx.post(f"{base}/api/auth/token/", data={
        "grant_type": "client_credentials", "client_id": config["client_id"],
        "client_secret": config["client_secret"]}).json()["access_token"]
    with httpx.Client(base_url=base + API, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                      limits=httpx.Limits(max_connections=concurrency * 2)) as client:
        requests = 1

        def pages(path: str, params: dict[str, Any]) -> list[dict]:
            nonlocal requests
            items, url, query = [], path, {"size": 100, **params}
            while url:
                body = client.get(url, params=query).json()
                requests += 1
                items += body["results"]
                url, query = body.get("next"), None  # older builds' event logs: no `next` (one page of 100 here)
            return items

        def read(path: str, params: dict[str, Any] | None = None) -> Any:
            """One answer, parsed (every answer is, as the issue's floor does)."""
            nonlocal requests
            answer = client.get(path, params=params)
            answer.raise_for_status()
            requests += 1
            return answer.json()

        orgs = read("webhooks/available-organizations/")
        meetings = []
        for org in orgs:
            meetings += pages("meeting/", {"organization_id": org["id"]})
            read("topics/", {"organization_id": org["id"]})
            read("calendar/upcoming-meetings/", {"organization_id": org["id"], "limit": 100})
            for first, last in _months(date.today()):
                read("usage/", {"organization_id": org["id"], "start_date": first, "end_date": last})
        for hook in pages("webhooks/", {}):
            read(f"webhooks/{hook['id']}/")
            pages("webhook-events/", {"webhook_id": hook["id"]})

        def fetch(meeting: dict) -> int:
            parts = ["", "participants/"]
            staged = "transcription" in meeting
            if (meeting.get("transcription") or {}).get("status") == "completed" or (
                    not staged and meeting.get("status") == "past"):
                parts.append("transcript/")
            if (meeting.get("summarization") or {}).get("status") == "completed" or (
                    not staged and meeting.get("summary_complete")):
                parts += ["summary/", "summary-with-video/"]
            for part in parts:
                answer = client.get(f"meeting/{meeting['id']}/{part}")
                answer.raise_for_status()
                answer.json()  # parsed, as the floor does
            return len(parts)

        with ThreadPoolExecutor(concurrency) as pool:
            requests += sum(pool.map(fetch, meetings))
        return requests


def rest_api_source(config: dict) -> Any:
    """dlt's generic rest_api source, configured for the same API as well as it allows
    (it cannot tell a finished transcript from a pending one, so it asks for all)."""
    from dlt.sources.rest_api import rest_api_source as make

    today = date.today()
    months = _months(today)
    per_meeting = {"paginator": "single_page"}
    return make({
        "client": {"base_url": config["base_url"].rstrip("/") + API,
                   "auth": {"type": "oauth2_client_credentials",
                            "access_token_url": config["base_url"].rstrip("/") + "/api/auth/token/",
                            "client_id": config["client_id"], "client_secret": config["client_secret"]},
                   "paginator": {"type": "json_link", "next_url_path": "next"}},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            {"name": "organizations", "endpoint": {"path": "webhooks/available-organizations/",
                                                   "paginator": "single_page"}},
            {"name": "meetings", "endpoint": {"path": "meeting/", "data_selector": "results", "params": {
                "organization_id": "{resources.organizations.id}", "size": 100}}},
            {"name": "meeting_details", "endpoint": {"path": "meeting/{resources.meetings.id}/", **per_meeting}},
            {"name": "participants", "primary_key": None, "write_disposition": "append", "endpoint": {
                "path": "meeting/{resources.meetings.id}/participants/", "data_selector": "participants",
                **per_meeting}},
            {"name": "transcript_segments", "primary_key": None, "write_disposition": "append", "endpoint": {
                "path": "meeting/{resources.meetings.id}/transcript/", "data_selector": "transcripts",
                **per_meeting}},
            {"name": "summaries", "primary_key": "meeting_id", "endpoint": {
                "path": "meeting/{resources.meetings.id}/summary/", "data_selector": "$", **per_meeting}},
            {"name": "topics", "endpoint": {"path": "topics/", "params": {
                "organization_id": "{resources.organizations.id}"}, "paginator": "single_page"}},
            {"name": "usage", "primary_key": None, "write_disposition": "append", "endpoint": {
                "path": "usage/", "data_selector": "results", "paginator": "single_page", "params": {
                    "organization_id": "{resources.organizations.id}", "start_date": months[-1][0],
                    "end_date": months[0][1]}}},
            {"name": "webhooks", "endpoint": {"path": "webhooks/", "data_selector": "results",
                                              "params": {"size": 100}}},
            {"name": "webhook_events", "endpoint": {"path": "webhook-events/", "data_selector": "results",
                                                    "params": {"webhook_id": "{resources.webhooks.id}",
                                                               "size": 100}}},
        ],
    })
