"""What the `meetings` views should hold, computed from the source tables (row counts) and
from the simulators (the analyst questions), independently of the model's SQL."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

VIEW_NAMES = ("meetings", "participants", "transcript_segments", "summaries", "action_items", "topics")


def fetch(client: Any, dataset: str, table: str) -> list[dict[str, Any]]:
    """Every row of `dataset.table` as dicts; [] when the table does not exist."""
    esc = client.capabilities.escape_identifier
    try:
        with client.execute_query(f"SELECT * FROM {esc(dataset)}.{esc(table)}") as cursor:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    except Exception as exc:  # noqa: BLE001 - a missing table
        if "does not exist" in str(exc) or "not exist" in str(exc).lower() or "Catalog Error" in str(exc):
            return []
        raise


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _blank(value: Any) -> bool:
    return value is None or not str(value).strip()


def expected_counts(client: Any) -> dict[tuple[str, str], int]:
    """{(view, source): live rows} from the raw tables of the five default datasets."""
    out: Counter = Counter()

    def live(rows: list[dict], key: str = "id") -> set:
        return {str(r[key]) for r in rows if r.get("deleted_at") is None}

    def dead(rows: list[dict], key: str = "id") -> set:
        return {str(r[key]) for r in rows if r.get("deleted_at") is not None}

    # meetric_partner
    convs = fetch(client, "meetric_partner", "conversations")
    gone = dead(convs)
    parent = {r["_dlt_id"]: r for r in convs}
    out["meetings", "meetric_partner"] = len(convs)
    out["participants", "meetric_partner"] = sum(
        1 for p in fetch(client, "meetric_partner", "conversations__participants")
        if parent[p["_dlt_parent_id"]].get("deleted_at") is None)
    out["transcript_segments", "meetric_partner"] = sum(
        1 for s in fetch(client, "meetric_partner", "transcript_segments") if s["meeting_id"] not in gone)
    out["summaries", "meetric_partner"] = sum(
        1 for s in fetch(client, "meetric_partner", "summaries")
        if not _blank(s.get("summary")) and s["conversation_id"] not in gone)
    out["action_items", "meetric_partner"] = sum(
        1 for i in fetch(client, "meetric_partner", "insights")
        if i["type"] == "action_item" and i["conversation_id"] not in gone)
    out["topics", "meetric_partner"] = len({
        (t["conversation_id"], t["name"]) for t in fetch(client, "meetric_partner", "conversation_topics")
        if t["conversation_id"] not in gone and not _blank(t["name"])})
    # meetric
    convs = fetch(client, "meetric", "conversations")
    gone = dead(convs)
    out["meetings", "meetric"] = len(convs)
    out["participants", "meetric"] = sum(len(_json(c["participants"]) or []) for c in convs
                                         if c.get("deleted_at") is None)
    out["summaries", "meetric"] = sum(1 for c in convs if c.get("deleted_at") is None
                                      and not _blank(c.get("summary")))
    out["action_items", "meetric"] = sum(
        1 for a in fetch(client, "meetric", "action_items")
        if a.get("deleted_at") is None and a["conversation_id"] not in gone)
    out["topics", "meetric"] = len({
        (i["conversation_id"], k) for i in fetch(client, "meetric", "insights")
        if i["type"] == "topic" and i.get("deleted_at") is None and i["conversation_id"] not in gone
        for k in _json(i.get("keywords")) or []})
    # meemo
    meetings = fetch(client, "meemo", "meetings")
    gone = dead(meetings)
    out["meetings", "meemo"] = len(meetings)
    out["participants", "meemo"] = sum(1 for p in fetch(client, "meemo", "participants")
                                       if str(p["meeting_id"]) not in gone)
    out["transcript_segments", "meemo"] = sum(1 for s in fetch(client, "meemo", "transcript_segments")
                                              if s["meeting_id"] not in gone)
    out["summaries", "meemo"] = sum(1 for s in fetch(client, "meemo", "summaries")
                                    if not _blank(s.get("summary")) and str(s["meeting_id"]) not in gone)
    out["topics", "meemo"] = sum(len(set(_json(m.get("keywords")) or [])) for m in meetings
                                 if m.get("deleted_at") is None)
    # meetlog
    transcripts = fetch(client, "meetlog", "transcripts")
    out["meetings", "meetlog"] = len(transcripts)
    out["summaries", "meetlog"] = sum(1 for t in transcripts if t.get("deleted_at") is None
                                      and not _blank(t.get("summary")))
    # convo
    convs = fetch(client, "convo", "conversations")
    gone = dead(convs)
    out["meetings", "convo"] = len(convs)
    out["transcript_segments", "convo"] = sum(1 for s in fetch(client, "convo", "transcript_segments")
                                              if s["meeting_id"] not in gone)
    keypoints = {k["_dlt_id"]: k for k in fetch(client, "convo", "keypoints")
                 if k["conversation_id"] not in gone}
    sections = [s for s in fetch(client, "convo", "keypoints__keypoints__sections")
                if s["_dlt_parent_id"] in keypoints]
    out["summaries", "convo"] = len({s["_dlt_parent_id"] for s in sections})  # keypoints with a section
    out["action_items", "convo"] = sum(1 for a in fetch(client, "convo", "keypoints__keypoints__action_items")
                                       if a["_dlt_parent_id"] in keypoints)
    out["topics", "convo"] = len({(s["_dlt_parent_id"], s["heading"]) for s in sections
                                  if not _blank(s.get("heading"))})
    return {k: v for k, v in out.items() if v}


# ---------------------------------------------------------------------- from the simulators
def week(at: datetime) -> date:
    """The Monday (UTC) of the week of `at`, as `date_trunc('week', …)` gives it."""
    day = at.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def talk_seconds(sims: dict[str, Any]) -> dict[tuple[str, date], float]:
    """{(speaker, week of the meeting): seconds spoken} over every transcript the sources load."""
    spoken: dict[tuple[str, date], float] = defaultdict(float)
    partner = sims["meetric_partner"]
    cutoff = partner.now() - timedelta(days=30)
    for conv in partner.conversations.values():
        if conv.deleted or conv.date < cutoff or conv.status != "completed" or not conv.transcript:
            continue
        when = week(conv.date)
        for s in conv.transcript.get("sentences", []):
            spoken[s["speaker_name"], when] += s["end"] - s["start"]
        messages = conv.transcript.get("messages", [])
        for this, after in zip(messages, messages[1:], strict=False):
            spoken[this["sender"], when] += (_instant(after["sent_at"]) - _instant(this["sent_at"])).total_seconds()
    for m in sims["meemo"].meetings.values():
        stage = m.stages.get("transcription") or {}
        if m.deleted or stage.get("status") != "completed":
            continue
        when = week(m.start_time)
        for s in m.segments:
            if not s["confidential"]:
                spoken[s["speaker"], when] += s["end_time"] - s["start_time"]
    for conv in sims["convo"].conversations.values():
        if conv.deleted or conv.end is None:
            continue
        when = week(conv.start)
        # the instants as the transcript answer carries them (one in three without a fraction)
        at = [_instant(seg["timestamp"]) for seg in sims["convo"].transcript(conv)["segments"]]
        for s, start, nxt in zip(conv.segments, at, at[1:], strict=False):
            spoken[s["speaker"], when] += (nxt - start).total_seconds()
    return dict(spoken)


def meetings_per_week(sims: dict[str, Any]) -> dict[tuple[date, str], int]:
    counts: Counter = Counter()
    partner = sims["meetric_partner"]
    cutoff = partner.now() - timedelta(days=30)
    for conv in partner.conversations.values():
        if not conv.deleted and conv.date >= cutoff:
            counts[week(conv.date), "meetric_partner"] += 1
    for account in sims["meetric"].accounts.values():
        for conv in account.conversations.values():
            counts[week(conv["date"]), "meetric"] += 1
    for m in sims["meemo"].meetings.values():
        if not m.deleted:
            counts[week(m.start_time), "meemo"] += 1
    for t in sims["meetlog"].transcripts.values():
        if not t.deleted:
            counts[week(t.created_at), "meetlog"] += 1
    for conv in sims["convo"].conversations.values():
        if not conv.deleted:
            counts[week(conv.start), "convo"] += 1
    return dict(counts)


def open_items_per_owner(sims: dict[str, Any]) -> dict[str, int]:
    """Open (or untracked) action items per owner's name."""
    counts: Counter = Counter()
    for account in sims["meetric"].accounts.values():
        for item in account.action_items.values():
            if item["status"] in ("pending", "in_progress"):
                counts[account.users[item["assigned_to"]]["name"]] += 1
    partner = sims["meetric_partner"]
    cutoff = partner.now() - timedelta(days=30)
    for conv in partner.conversations.values():
        if not conv.deleted and conv.date >= cutoff and conv.status == "completed":
            for insight in conv.insights:
                if insight["type"] == "action_item":
                    counts[insight["speaker_name"]] += 1
    for conv in sims["convo"].conversations.values():
        if not conv.deleted and conv.keypoints:
            for item in conv.keypoints["keypoints"]["actionItems"]:
                counts[item["owner"]] += 1
    return dict(counts)
