"""Projects and their membership (`project_transcripts`).

The projects list is short and carries `updated_at`, which moves when a transcript is
moved into or out of a project. Every run reads the whole list (it is the only way to see
an old project change), loads the project rows whose list fields changed, and calls Get
project only for projects whose `updated_at` moved. A fetched project's transcript list
replaces its old membership whole: `project_transcripts` is merged with merge key
`project_id`, and a project that became empty sends one hard-delete marker row, so its old
rows go too. Projects no longer listed are confirmed with Get project; a 404 marks them
deleted (their last membership rows are kept, like every row of a deleted record).

A project whose `updated_at` cannot be read is asked for every run (its membership rows are
loaded only when their hash moved) and named in the run's report.

State: known {id: [updated_at of the membership loaded (or "#hash" of it, when `updated_at`
is unreadable), hash of the row loaded]}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import dlt

from .._common.concurrency import map_ordered
from .._common.errors import AuthError, MeetingEltError, NotFoundError, RateLimitError, ScopeError
from .._common.http import ApiClient
from .._common.paginators import PageNumberPaginator
from .._common.records import excerpt, read_instant
from .._common.report import RunReport
from .._common.state import record_deletions, revive
from .helpers import tidy, version
from .settings import DETAIL_BATCH, MEMBERSHIP_REMOVED

NESTED = frozenset({"transcripts"})


class ProjectSync:
    """One run over the projects; `run()` yields pages for `projects` and `project_transcripts`."""

    def __init__(self, client: ApiClient, report: RunReport, *, state: dict, source_state: dict,
                 now: datetime, page_size: int) -> None:
        self.client, self.report, self.now, self.page_size = client, report, now, page_size
        self.source_state = source_state
        self.known: dict[str, list] = state.setdefault("known", {})
        self.projects: list[dict] = []
        self.members: list[dict] = []
        self.ops: list[Callable[[], None]] = []
        self.stopped: str | None = None

    def _list(self) -> list[dict] | None:
        paginator = PageNumberPaginator(page_size=self.page_size, size_param="page_size",
                                        total_pages_path="meta.total_pages")
        items: dict[str, dict] = {}
        try:
            for page in self.client.paginate("projects", paginator=paginator, items_path="items"):
                for item in page.items:
                    if not isinstance(item, dict) or item.get("id") in (None, ""):
                        self.report.bad_record("projects", excerpt(item), "listed without an id: not loaded",
                                               loaded=False)
                        continue
                    item["id"] = str(item["id"])
                    items[item["id"]] = item
        except RateLimitError as exc:
            self.report.warn(f"projects: listing stopped, left for the next run: {exc.message}")
            self.report.wait("projects", "the projects list could not be read to its end")
            return None
        return list(items.values())

    def run(self) -> Iterator[Any]:
        items = self._list()
        if items is None:
            return
        listed = {i["id"] for i in items}
        fetch: list[tuple[str, dict | None]] = []
        for item in items:
            old = self.known.get(item["id"]) or [None, None]
            digest = version(item, NESTED)
            if old[1] != digest:
                self._stage_project(item, digest)
            if old[0] is None or old[0] != item.get("updated_at") or read_instant(item.get("updated_at")) is None:
                fetch.append((item["id"], item))  # unreadable `updated_at`: it cannot tell, so ask
        missing = [pid for pid in list(self.known) if pid not in listed]
        if missing and not listed:
            self.report.warn(f"projects: the API listed none while {len(self.known)} are known: "
                             "refusing to mark any as deleted")
        else:
            fetch += [(pid, None) for pid in missing]  # gone from the list: a 404 confirms it

        def detail(job: tuple[str, dict | None]) -> Any:
            return self.client.get(f"projects/{job[0]}").body

        for (pid, item), result in map_ordered(detail, fetch, self.client.settings.concurrency):
            self._settle(pid, item, result)
            if len(self.members) >= DETAIL_BATCH:
                yield from self._flush()
        yield from self._flush()
        revive(self.source_state, "projects", listed)

    def _settle(self, pid: str, item: dict | None, result: Any) -> None:
        if isinstance(result, NotFoundError):
            def gone() -> None:
                self.known.pop(pid, None)
                record_deletions(self.source_state, "projects", [pid], self.now)
            self.ops.append(gone)
        elif isinstance(result, AuthError | ScopeError):
            raise result
        elif isinstance(result, RateLimitError):
            if not self.stopped:
                self.stopped = result.message
                self.report.wait("project_transcripts", f"some projects' transcripts were not read: {result.message}")
        elif isinstance(result, MeetingEltError):
            self.report.warn(f"project {pid}: transcripts not loaded, retried next run: {result}")
        elif isinstance(result, BaseException):
            raise result
        elif not isinstance(result, dict) or not isinstance(result.get("transcripts"), list):
            self.report.warn(f"project {pid}: the answer has no transcripts list, retried next run: "
                             f"{str(result)[:200]}")
        else:
            if item is None:  # listed no more, yet there: the list shifted while we paged
                row = {k: v for k, v in result.items() if k not in NESTED}
                row["id"] = pid
                self._stage_project(row, version(row, NESTED))
            self._stage_members(pid, (item or result).get("updated_at"), result["transcripts"])

    def _stage_project(self, row: dict, digest: str) -> None:
        self.projects.append(tidy("projects", row, self.report))
        pid = row["id"]

        def apply() -> None:
            self.known.setdefault(pid, [None, None])[1] = digest

        self.ops.append(apply)

    def _stage_members(self, pid: str, updated_at: Any, transcripts: list) -> None:
        if read_instant(updated_at) is None:
            # no instant to remember: the membership's own hash tells whether it moved
            updated_at = f"#{version({'transcripts': transcripts}, ())}"
            if (self.known.get(pid) or [None])[0] == updated_at:
                return
        rows = []
        for entry in transcripts:
            tid = entry.get("id") if isinstance(entry, dict) else entry
            if tid in (None, ""):
                self.report.warn(f"project {pid}: a transcript entry without an id was not loaded: {str(entry)[:120]}")
                continue
            rows.append({"project_id": pid, "transcript_id": str(tid)})
        if not rows:  # empty now: one marker row makes the merge delete the old membership
            rows.append({"project_id": pid, "transcript_id": "", MEMBERSHIP_REMOVED: True})
        self.members.extend(rows)

        def apply() -> None:
            self.known.setdefault(pid, [None, None])[0] = updated_at

        self.ops.append(apply)

    def _flush(self) -> Iterator[Any]:
        projects, members, ops = self.projects, self.members, self.ops
        self.projects, self.members, self.ops = [], [], []
        if projects:
            yield dlt.mark.with_table_name(projects, "projects")
        if members:
            yield dlt.mark.with_table_name(members, "project_transcripts")
        for apply in ops:
            apply()
