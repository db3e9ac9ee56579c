"""meetlog: a 2,000-transcript account (about as many reports, 20 projects), limits off.

floor: the same requests with bare httpx: every page of the three lists (100 a page), and
one detail call per completed transcript, completed report and project, the details
fetched with the same concurrency.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

SOURCE = "meetlog"
SIZE_KEY = "transcripts"
SIM_KWARGS = {"transcripts": 2000, "projects": 20, "processing": 20, "requests_per_minute": None}
SIZES = (300, 1200)  # 4x apart: the memory growth is measured between them
CONCURRENCY = 8  # the same for the floor and ours
PAGE_SIZE = 100


def floor(config: dict, concurrency: int) -> int:
    root = config["base_url"].rstrip("/") + "/api/v1/export"
    headers = {"Authorization": f"Bearer {config['api_token']}"}
    requests = 0
    with httpx.Client(base_url=root, headers=headers, timeout=30,
                      limits=httpx.Limits(max_connections=concurrency * 2)) as client:

        def detail(path: str) -> int:
            response = client.get(path)
            response.raise_for_status()
            return len(response.json())  # parsed, as the floor does

        for name in ("reports", "transcripts", "projects"):
            wanted: list[str] = []
            page = 1
            while True:
                body = client.get(name, params={"page": page, "page_size": PAGE_SIZE}).json()
                requests += 1
                wanted += [f"{name}/{i['id']}" for i in body["items"]
                           if name == "projects" or i.get("status") == "completed"]
                if page >= body["meta"]["total_pages"]:
                    break
                page += 1
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(detail, wanted))
            requests += len(wanted)
    return requests


def ours_kwargs(config: dict) -> dict[str, Any]:
    return {"page_size": PAGE_SIZE}


def rest_api_source(config: dict) -> Any:
    """dlt's generic rest_api source, configured for the same API as well as it allows.

    It cannot fetch details for completed records only, nor stop at already-loaded pages:
    it calls the detail endpoint for every listed record.
    """
    from dlt.sources.rest_api import rest_api_source as make

    paginator = {"type": "page_number", "base_page": 1, "page_param": "page",
                 "total_path": "meta.total_pages"}

    def listing(name: str) -> dict:
        return {"name": name, "endpoint": {"path": name, "data_selector": "items",
                                           "params": {"page_size": PAGE_SIZE}, "paginator": paginator}}

    def details(name: str) -> dict:
        return {"name": f"{name}_details", "primary_key": "id",
                "endpoint": {"path": f"{name}/{{resources.{name}.id}}", "paginator": "single_page"}}

    return make({
        "client": {"base_url": config["base_url"].rstrip("/") + "/api/v1/export/",
                   "auth": {"type": "bearer", "token": config["api_token"]}},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [listing("reports"), details("reports"), listing("transcripts"), details("transcripts"),
                      listing("projects"), details("projects")],
    })
