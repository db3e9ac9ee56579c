"""Convo: a 1,000-conversation account, the hourly limit lifted (a huge `X-RateLimit-Limit`).

floor: the same requests with bare httpx: the profile, the calendar, the webhooks, every
list page (100 a page), then per conversation its transcript, its keypoints (GET; 404 =
none yet) and, for transcripts of 10 segments or more, its feedback, fetched with the same
concurrency.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

SOURCE = "convo"
SIZE_KEY = "conversations"
SIM_KWARGS = {"conversations": 1000, "tier": "professional", "rate_limit": 1_000_000,
              "calendar_events": 40}
SIZES = (250, 1000)  # 4x apart: the memory growth is measured between them
CONCURRENCY = 8  # the same for the floor and ours
PAGE_SIZE = 100
FEEDBACK_MIN_SEGMENTS = 10


def floor(config: dict, concurrency: int) -> int:
    headers = {"Authorization": f"Bearer {config['api_key']}"}
    with httpx.Client(base_url=config["base_url"].rstrip("/") + "/", headers=headers, timeout=30,
                      limits=httpx.Limits(max_connections=concurrency * 2)) as client:
        requests = 0
        for path, params in (("user/profile", {}), ("calendar/events", {"maxResults": 50}),
                             ("webhooks", {})):
            client.get(path, params=params).raise_for_status()
            requests += 1
        calls: list[str] = []
        offset = 0
        while True:
            body = client.get("conversations", params={"limit": PAGE_SIZE, "offset": offset}).json()
            requests += 1
            for conv in body["data"]:
                count = conv["segmentCount"] or 0
                if count:
                    calls += [f"conversations/{conv['id']}/transcript", f"conversations/{conv['id']}/keypoints"]
                if count >= FEEDBACK_MIN_SEGMENTS:
                    calls.append(f"conversations/{conv['id']}/feedback")
            offset += len(body["data"])
            if len(body["data"]) < PAGE_SIZE or offset >= body["pagination"]["total"]:
                break

        def fetch(path: str) -> int:
            response = client.get(path)
            if response.status_code == 404:
                return 0
            response.raise_for_status()
            return len(response.json())  # parsed, as the floor does

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(fetch, calls))
        return requests + len(calls)


def ours_kwargs(config: dict) -> dict[str, Any]:
    return {"page_size": PAGE_SIZE}


def rest_api_source(config: dict) -> Any:
    """dlt's generic rest_api source, configured for the same API as well as it allows.

    It cannot skip feedback for short transcripts (it asks for every conversation) and
    gives offsets no meaning: it stores the transcript segments as the API sends them.
    """
    from dlt.sources.rest_api import rest_api_source as make

    not_yet = [{"status_code": 404, "action": "ignore"}]

    def child(name: str, selector: str | None) -> dict:
        endpoint = {"path": f"conversations/{{resources.conversations.id}}/{name}",
                    "paginator": "single_page", "response_actions": not_yet}
        if selector:
            endpoint["data_selector"] = selector
        # keypoints and feedback carry the conversation's id as `id`
        return {"name": name, "primary_key": "id" if name != "transcript" else None,
                "write_disposition": "merge" if name != "transcript" else "append",
                "endpoint": endpoint}

    return make({
        "client": {"base_url": config["base_url"].rstrip("/") + "/",
                   "auth": {"type": "bearer", "token": config["api_key"]}},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            {"name": "user_profile", "primary_key": "email",  # the profile has no id
             "endpoint": {"path": "user/profile", "data_selector": "data.profile", "paginator": "single_page"}},
            {"name": "calendar_events", "endpoint": {"path": "calendar/events", "data_selector": "data",
                                                     "params": {"maxResults": 50}, "paginator": "single_page"}},
            {"name": "webhooks", "endpoint": {"path": "webhooks", "data_selector": "data",
                                              "paginator": "single_page"}},
            {"name": "conversations", "endpoint": {
                "path": "conversations", "data_selector": "data",
                "paginator": {"type": "offset", "limit": PAGE_SIZE, "total_path": "pagination.total"}}},
            child("transcript", "data.segments"),
            child("keypoints", "data"),
            child("feedback", "data"),
        ],
    })

