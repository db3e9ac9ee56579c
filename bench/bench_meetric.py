"""Meetric workspace: one account of 10,000 conversations over a year, limits off.

floor: the same requests a first run makes, with bare httpx and the same concurrency
(first page of each list, then the other offsets side by side): users, the managers of
each team and department, conversations (and the two requests that find the oldest),
insights, action items, trends in 92-day chunks, and one summary a day for 90 days.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

SOURCE = "meetric"
SIZE_KEY = "conversations"
SIM_KWARGS = {"conversations": 10000, "users": 60, "span_days": 365, "rate_limit": None}
SIZES = (7500, 30000)  # 4x apart: the memory growth is measured between them
CONCURRENCY = 8  # the same for the floor and ours
PAGE = 100


def floor(config: dict, concurrency: int) -> int:
    headers = {"Authorization": f"Bearer {config['api_key']}", "X-Account-ID": config["account_id"]}
    with httpx.Client(base_url=config["base_url"].rstrip("/") + "/", headers=headers, timeout=30,
                      limits=httpx.Limits(max_connections=concurrency * 2)) as client, \
            ThreadPoolExecutor(concurrency) as pool:
        sent = 0

        def get(path: str, params: dict | None = None) -> Any:
            nonlocal sent
            sent += 1
            answer = client.get(path, params=params)
            answer.raise_for_status()
            return answer.json()

        def list_all(path: str) -> list[dict]:
            first = get(path, {"limit": PAGE, "offset": 0})
            items = list(first["data"])
            offsets = range(PAGE, first["pagination"]["total"], PAGE)
            for page in pool.map(lambda o: get(path, {"limit": PAGE, "offset": o}), offsets):
                items.extend(page["data"])
            return items

        users = list_all("users")
        teams = sorted({u["team_id"] for u in users if u.get("team_id")})
        departments = sorted({u["department_id"] for u in users if u.get("department_id")})
        list(pool.map(lambda t: get(f"teams/{t}/managers"), teams))
        list(pool.map(lambda d: get(f"departments/{d}/managers"), departments))
        list_all("conversations")
        total = get("conversations", {"limit": 1})["pagination"]["total"]
        oldest = get("conversations", {"limit": 1, "offset": total - 1})["data"][0]["date"]
        list_all("insights")
        list_all("action-items")
        today = datetime.now(UTC).date()
        start = date.fromisoformat(oldest[:10])
        while start <= today:
            end = min(today, start + timedelta(days=91))
            get("insights/trends", {"start_date": start.isoformat(), "end_date": end.isoformat(),
                                    "interval": "day"})
            start = end + timedelta(days=1)
        days = [(today - timedelta(days=n)).isoformat() for n in range(91)]
        list(pool.map(lambda d: get("insights/summary", {"start_date": d, "end_date": d}), days))
        return sent


def rest_api_source(config: dict) -> Any:
    """dlt's generic rest_api source, configured for the same API as well as it allows.

    It cannot derive team/department ids from users without calling once per user, so the
    manager lists are left out, and its trends cover only the 91 days whose summaries it
    asks for (one per trend row, as a child resource): both only flatter it.
    """
    from dlt.sources.rest_api import rest_api_source as make

    today = datetime.now(UTC).date()
    paged = {"type": "offset", "limit": PAGE, "offset_param": "offset", "limit_param": "limit",
             "total_path": "pagination.total"}

    def listing(name: str, path: str) -> dict:
        return {"name": name, "endpoint": {"path": path, "data_selector": "data", "paginator": paged}}

    return make({
        "client": {"base_url": config["base_url"].rstrip("/") + "/",
                   "auth": {"type": "bearer", "token": config["api_key"]},
                   "headers": {"X-Account-ID": config["account_id"]}},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            listing("users", "users"), listing("conversations", "conversations"),
            listing("insights", "insights"), listing("action_items", "action-items"),
            {"name": "insight_trends", "primary_key": "period_start", "endpoint": {
                "path": "insights/trends", "data_selector": "data", "paginator": "single_page",
                "params": {"start_date": (today - timedelta(days=90)).isoformat(),
                           "end_date": today.isoformat(), "interval": "day"}}},
            {"name": "insight_summary", "primary_key": "period_start", "endpoint": {
                "path": "insights/summary", "data_selector": "data", "paginator": "single_page",
                "params": {"start_date": "{resources.insight_trends.period_start}",
                           "end_date": "{resources.insight_trends.period_start}"}},
             "include_from_parent": ["period_start"]},
        ],
    })
