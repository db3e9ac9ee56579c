"""meetlog's records on the engine: what each version owes, the per-item calls, the rows.

Transcripts and reports. A record's version is a hash of its list fields. Each new or
changed version owes its row, the part `detail`: a `completed` record's row is its detail
answer (`GET /transcripts/{id}` adds text, summary, file size and report ids;
`GET /reports/{id}` adds the Markdown content), one call; any other record's row is its
list item, with no call (a transcript whose `status` is not text counts as not completed:
whether it is, is unknown). Records still processing wait (the ledger's `waiting`): the
listing reaches them on the pages it reads, or the engine asks for them by id, `detail`
being the lookup, whose 404 also confirms a deletion that a sweep found. A failed detail
call is owed and tried again on the next run.

A report hangs off its transcript (`parent`): a report added or deleted makes its
transcript owe its detail again (`report_ids` changed), fetched in the same run, as
reports run before transcripts.

Projects. The list is read whole every run; a project's row loads when its list fields
change. Its membership (`GET /projects/{id}`, the part `members`) is owed when its
`updated_at` moves; a project whose `updated_at` cannot be read owes it every run, and
its rows load only when the membership's own hash moved. A fetched membership replaces
the project's old one whole (merge key `project_id`; an empty project sends one
hard-delete marker row). Rows of a deleted project keep its last membership.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dlt

from .._common.engine import Entity, Fetched, NotFound, Part, TableSpec, Work
from .._common.errors import MeetingEltError
from .._common.http import ApiClient
from .._common.ledger import Ledger, row_hash
from .._common.records import describe, read_instant, read_text
from .._common.report import RunReport
from .helpers import read_status, record_id, tidy, version
from .settings import (
    COMPLETED,
    DETAIL_BATCH,
    DETAIL_FIELDS,
    DETAIL_RETRY_FIRST,
    MEMBERSHIP_REMOVED,
    PROCESSING_STATUSES,
)

NESTED = frozenset({"transcripts"})  # a project detail's membership, not a projects column


def _detail(client: ApiClient, path: str) -> Callable[[Work], dict]:
    """The row of a record: its list item, or for a completed one (or one asked for by id)
    its detail answer over the list item."""
    def fetch(work: Work) -> dict:
        item = work.item
        if item is not None and item.get("status") != COMPLETED:
            return item  # not completed: the list item is all there is
        body = client.get(f"{path}/{work.record_id}").body
        if not isinstance(body, dict) or record_id(body) != work.record_id:
            raise MeetingEltError(f"malformed detail answer ({describe(body, 200)})")
        return {**(item or {}), **body}

    return fetch


def listed_entity(path: str, client: ApiClient, *, parent_of: Callable[[dict], str | None] | None = None,
                  parent_changed: Callable[[set[str]], None] | None = None) -> Entity:
    """Transcripts or reports (`path`): newest-first lists whose completed records have a detail."""
    fields = DETAIL_FIELDS[path]
    return Entity(
        name=path, table=path, key=record_id,
        version=lambda item: version(item, fields),
        day=lambda item: (at.isoformat() if (at := read_instant(item.get("created_at"))) else None),
        wants=lambda item: (["detail"], read_status(item.get("status")) in PROCESSING_STATUSES),
        row=lambda item: None,  # the row is the part `detail`
        parts=(Part("detail", (path,), fetch=_detail(client, path), not_found=NotFound.DELETED,
                    retry_first=DETAIL_RETRY_FIRST),),
        lookup="detail", batch=DETAIL_BATCH,
        parent=parent_of or (lambda item: None), parent_changed=parent_changed,
    )


def transcript_of(report_item: dict) -> str | None:
    found = read_text(report_item.get("transcription_id"))
    return found if found and found.strip() else None


def transcripts_refetch(ids: set[str]) -> None:
    """Reports added to or deleted from these transcripts: their detail (`report_ids`) is owed again."""
    book = Ledger(dlt.current.source_state()).entity("transcripts")
    for transcript_id in ids:
        book.refetch(transcript_id, "detail")


def listed_table(path: str, report: RunReport, hints: dict[str, Any]) -> TableSpec:
    def shape(fetched: Fetched) -> list[dict]:
        row = {**fetched.bodies["detail"], "id": fetched.work.record_id, "deleted_at": None}
        return [tidy(path, row, report)]

    return TableSpec(path, part="detail", shape=shape, hints=hints)


# ---------------------------------------------------------------------- projects
def members_version(item: dict) -> str:
    """What a project's membership is fetched for: its `updated_at`, or when that cannot be
    read the membership's own hash (a list item has none, so it is asked for every run)."""
    updated = item.get("updated_at")
    return str(updated) if read_instant(updated) is not None else f"#{row_hash(item.get('transcripts'))}"


def _members(client: ApiClient) -> Callable[[Work], dict]:
    def fetch(work: Work) -> dict:
        body = client.get(f"projects/{work.record_id}").body
        if not isinstance(body, dict) or not isinstance(body.get("transcripts"), list):
            raise MeetingEltError(f"the answer has no transcripts list ({describe(body, 200)})")
        return {**(work.item or {}), **body, "id": work.record_id}

    return fetch


def project_entity(client: ApiClient, report: RunReport) -> Entity:
    return Entity(
        name="projects", table="projects", key=record_id,
        version=lambda item: version(item, NESTED),
        wants=lambda item: (["members"], False),
        row=lambda item: tidy("projects", {k: v for k, v in item.items() if k not in NESTED}
                              | {"id": record_id(item)}, report),
        parts=(Part("members", ("project_transcripts",), fetch=_members(client), not_found=NotFound.DELETED,
                    version=members_version, retry_first=DETAIL_RETRY_FIRST),),
        lookup="members", batch=DETAIL_BATCH,
    )


def member_rows(report: RunReport, loaded_before: set[str] | None = None) -> Callable[[Fetched], list[dict]]:
    """A project's membership rows. An empty one sends a hard-delete marker row, but not for
    a project not in `loaded_before` (its membership never loaded: nothing to delete). The
    first write of a Delta table (filesystem destination) is a plain append, which would
    store the marker as a row."""
    def shape(fetched: Fetched) -> list[dict]:
        pid = fetched.work.record_id
        rows = []
        for entry in fetched.bodies["members"]["transcripts"]:
            tid = entry.get("id") if isinstance(entry, dict) else entry
            if tid in (None, ""):
                report.warn(f"project {pid}: a transcript entry without an id was not loaded: {str(entry)[:120]}")
                continue
            rows.append({"project_id": pid, "transcript_id": str(tid)})
        if rows or (loaded_before is not None and pid not in loaded_before):
            return rows
        # empty now: one marker row makes the merge delete the old membership
        return [{"project_id": pid, "transcript_id": "", MEMBERSHIP_REMOVED: True}]

    return shape
