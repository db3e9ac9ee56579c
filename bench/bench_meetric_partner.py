"""Meetric partner: a 2,000-conversation account, limits off.

floor: the same requests with bare httpx (account, people, deliveries, every list page,
and one detail call with transcript and insights included per completed conversation),
details fetched with the same concurrency.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

SOURCE = "meetric_partner"
SIZE_KEY = "conversations"
SIM_KWARGS = {"conversations": 2000, "span_days": 29, "requests_per_minute": None, "daily_quota": None}
SIZES = (1000, 4000)  # 4x apart: the memory growth is measured between them
CONCURRENCY = 8  # the same for the floor and ours


def floor(config: dict, concurrency: int) -> int:
    root = config["base_url"].rstrip("/") + "/api/v1/rest"
    headers = {"Authorization": f"Bearer {config['api_token']}"}
    with httpx.Client(base_url=root, headers=headers, timeout=30,
                      limits=httpx.Limits(max_connections=concurrency * 2)) as client:
        requests = 0
        for path in ("account", "users", "teams", "departments", "webhooks/deliveries"):
            client.get(path).raise_for_status()
            requests += 1
        completed: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 25}
            if cursor:
                params["cursor"] = cursor
            page = client.get("conversations", params=params).json()
            requests += 1
            completed += [c["id"] for c in page["conversations"] if c["status"] == "completed"]
            cursor = page["pagination"]["next_cursor"]
            if not cursor:
                break

        def detail(cid: str) -> int:
            r = client.get(f"conversations/{cid}",
                           params={"include_transcript": "true", "include_insights": "true"})
            r.raise_for_status()
            return len(r.json())  # parsed, as the floor does

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(detail, completed))
        return requests + len(completed)


def rest_api_source(config: dict) -> Any:
    """dlt's generic rest_api source, configured for the same API as well as it allows."""
    from dlt.sources.rest_api import rest_api_source as make

    return make({
        "client": {"base_url": config["base_url"].rstrip("/") + "/api/v1/rest/",
                   "auth": {"type": "bearer", "token": config["api_token"]}},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            {"name": "account", "endpoint": {"path": "account", "data_selector": "account",
                                             "paginator": "single_page"}},
            {"name": "users", "endpoint": {"path": "users", "data_selector": "users", "paginator": "single_page"}},
            {"name": "teams", "endpoint": {"path": "teams", "data_selector": "teams", "paginator": "single_page"}},
            {"name": "departments", "endpoint": {"path": "departments", "data_selector": "departments",
                                                 "paginator": "single_page"}},
            {"name": "webhook_deliveries", "endpoint": {"path": "webhooks/deliveries",
                                                        "data_selector": "deliveries", "paginator": "single_page"}},
            {"name": "conversations", "endpoint": {
                "path": "conversations", "data_selector": "conversations", "params": {"limit": 25},
                "paginator": {"type": "cursor", "cursor_path": "pagination.next_cursor",
                              "cursor_param": "cursor"}}},
            {"name": "conversation_details", "primary_key": "id", "endpoint": {
                "path": "conversations/{resources.conversations.id}",
                "params": {"include_transcript": "true", "include_insights": "true"},
                "data_selector": "conversation", "paginator": "single_page"}},
        ],
    })


def ours_kwargs(config: dict) -> dict:
    """The simulator's quota is off for the benchmark, so is the source's own count of it
    (else a 4,000-conversation account would stop at the 1,000 conversations of a day)."""
    return {"daily_conversation_quota": 0}
