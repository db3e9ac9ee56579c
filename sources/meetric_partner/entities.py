"""Conversations on the engine: what each version owes, the one detail call, and the rows.

Only `completed` conversations have details. A new or changed one (its `updated_at` moved)
owes the detail call, which brings the summary, the transcript and the insights in one
request and one quota unit (the includes follow the tables selected this run, and a missing
scope drops its include and skips its tables). `processing` ones wait: the listing reaches
back to them until they complete. `failed` ones owe nothing.

The daily quota of unique conversations is counted here (`quota.py`): a call it refuses is
never sent, and the engine stops the run's per-item calls cleanly at the first refusal.
"""

from __future__ import annotations

import threading
from typing import Any

from .._common.engine import (
    Action,
    Engine,
    Entity,
    Fetched,
    NotFound,
    Part,
    TableSpec,
    Work,
    tolerate,
)
from .._common.errors import QuotaExhausted
from .._common.http import ApiClient
from .._common.records import describe, read_dict, read_instant, report_problems
from .._common.report import RunReport
from .._common.transcripts import TABLE as SEGMENTS
from .helpers import Listed, insight_rows, topic_rows, transcript_rows
from .quota import DailyQuota
from .settings import SCOPE_TABLES

DETAIL_TABLES = ("summaries", SEGMENTS, "insights", "conversation_topics")
INCLUDES = {"transcripts": SEGMENTS, "insights": "insights"}  # scope -> the table it feeds


class ConversationCalls:
    """The per-conversation calls of one run: includes, scopes dropped, the quota."""

    def __init__(self, client: ApiClient, report: RunReport, *, include_recordings: bool) -> None:
        self.client, self.report = client, report
        self.include_recordings = include_recordings
        self.engine: Engine | None = None
        self.quota: DailyQuota | None = None
        self.dropped: set[str] = set()  # scopes the token lacks (found this run)
        self._counted: dict[str, bool] = {}  # calls in flight that counted a new conversation
        self._lock = threading.Lock()

    def _wanted(self, scope: str) -> bool:
        selected = self.engine.selected if self.engine else set()
        return INCLUDES[scope] in selected and scope not in self.dropped

    def detail(self, work: Work) -> dict:
        """One detail call with the transcript and insights included: one quota unit."""
        cid = work.record_id
        touched_before = self.quota.touched(cid)
        refused = self.quota.take(cid)
        if refused:
            raise QuotaExhausted(refused)
        with self._lock:
            self._counted[cid] = not touched_before
        while True:
            params = {"include_transcript": "true" if self._wanted("transcripts") else None,
                      "include_insights": "true" if self._wanted("insights") else None}
            with tolerate(Action.SKIP) as forbidden:  # a scope the token lacks
                answer = self.client.get(f"conversations/{cid}", params).body
            if forbidden.error is None:
                break
            if not self._drop(forbidden.error):
                raise forbidden.error
        with self._lock:
            self._counted.pop(cid, None)
        conversation = read_dict(answer.get("conversation")) if isinstance(answer, dict) else None
        if conversation is None:
            raise ValueError(f"the detail answer has no conversation object ({describe(answer)})")
        return conversation

    def release(self, work: Work) -> None:
        """The detail call was refused (a 429, or never sent): the API did not count it."""
        with self._lock:
            counted = self._counted.pop(work.record_id, False)
        if counted:
            self.quota.release(work.record_id)

    def recording(self, work: Work) -> dict:
        body = self.client.get(f"conversations/{work.record_id}/recording-url").body
        if not isinstance(body, dict):
            raise ValueError(f"the recording answer is not an object ({describe(body)})")
        return body

    def _drop(self, exc: Any) -> bool:
        """A 403 for an include's scope: load the rest without it, and say so once."""
        scope = exc.scope
        with self._lock:
            if scope not in INCLUDES:
                return False
            if scope in self.dropped:
                return True  # another thread dropped it while this call was in flight: retry
            self.dropped.add(scope)
        for table in SCOPE_TABLES.get(scope, []):
            self.report.skip(table, f"the token lacks the '{scope}' scope ({exc.message})")
        return True


def conversation_entity(calls: ConversationCalls, report: RunReport) -> Entity:
    def wants(item: Listed) -> tuple[list[str], bool]:
        if item.status == "completed":
            return (["detail", "recording"] if calls.include_recordings else ["detail"]), False
        return [], item.status == "processing"

    def row(item: Listed) -> dict:
        report_problems(report, "conversations", item.id, item.problems)
        return item.row

    return Entity(
        name="conversations", table="conversations",
        key=lambda item: item.id,
        version=lambda item: str(item.updated),
        day=lambda item: item.book_date.isoformat() if item.book_date else None,
        wants=wants, row=row,
        parts=(Part("detail", DETAIL_TABLES, fetch=calls.detail, not_found=NotFound.DELETED,
                    refused=calls.release),
               Part("recording", ("recording_urls",), fetch=calls.recording, not_found=NotFound.NONE)),
    )


# ---------------------------------------------------------------------- rows of the detail
def _origin(fetched: Fetched) -> Any:
    item = fetched.work.item
    return (item.date if item is not None else None) or read_instant(fetched.bodies["detail"].get("date"))


def summary_rows(report: RunReport) -> Any:
    def shape(fetched: Fetched) -> list[dict]:
        cid, conv = fetched.work.record_id, fetched.bodies["detail"]
        summary = conv.get("summary")
        if summary is not None and not isinstance(summary, str):
            report.bad_record("summaries", cid, f"summary={describe(summary)} is not text: loaded as sent",
                              loaded=True)
        listed_updated = fetched.work.item.updated if fetched.work.item is not None else None
        return [{"conversation_id": cid, "summary": summary,
                 "updated_at": read_instant(conv.get("updated_at")) or read_instant(listed_updated)}]

    return shape


def segment_rows(report: RunReport) -> Any:
    def shape(fetched: Fetched) -> list[dict]:
        cid, conv = fetched.work.record_id, fetched.bodies["detail"]
        if "transcript" not in conv:
            return []  # not included this run (its scope is missing)
        rows = transcript_rows(cid, _origin(fetched), conv.get("transcript"), report)
        if rows is None:
            report.bad_record(SEGMENTS, cid, "transcript in an unknown shape: not loaded "
                              f"({describe(conv.get('transcript'))})", loaded=False)
            return []
        return rows

    return shape


def table_specs(report: RunReport, hints: dict[str, dict]) -> list[TableSpec]:
    from .._common.transcripts import segments_table

    return [
        TableSpec("conversations", hints=hints["conversations"]),
        TableSpec("summaries", part="detail", shape=summary_rows(report), hints=hints["summaries"]),
        TableSpec(SEGMENTS, part="detail", shape=segment_rows(report),
                  finish=lambda rows: segments_table(rows, report), hints=hints[SEGMENTS]),
        TableSpec("insights", part="detail", hints=hints["insights"],
                  shape=lambda f: insight_rows(f.work.record_id, f.bodies["detail"].get("insights"), report)),
        TableSpec("conversation_topics", part="detail", hints=hints["conversation_topics"],
                  shape=lambda f: topic_rows(f.work.record_id, f.bodies["detail"].get("topics"), report)),
        TableSpec("recording_urls", part="recording", hints=hints["recording_urls"],
                  shape=lambda f: [{k: v for k, v in f.bodies["recording"].items() if k != "_meta"}
                                   | {"conversation_id": f.work.record_id}]
                  if f.bodies["recording"].get("recording_url") else []),
    ]
