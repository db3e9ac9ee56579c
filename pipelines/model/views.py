"""The views of the `meetings` dataset: names, keys, columns and their types (DESIGN.md,
"The meetings model"). Every view also has `source`, the name of the source a row came from.
"""

from __future__ import annotations

from dataclasses import dataclass

# SQL types, written in the Postgres dialect that the model's SQL is written in
TEXT, BIGINT, DOUBLE, TIMESTAMPTZ, DATE = "TEXT", "BIGINT", "DOUBLE PRECISION", "TIMESTAMPTZ", "DATE"
BOOLEAN = "BOOLEAN"
STATUSES = ("scheduled", "live", "processing", "ready", "failed")
ACTION_ITEM_STATUSES = ("open", "done")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class View:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str
    # rows of a source's SELECT that do not pass this (on the SELECT's output `q`) are dropped
    where: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


SOURCE = Column("source", TEXT, "The source the row came from: `meetric_partner`, `meetric`, "
                                "`meemo`, `meetlog` or `convo`.")
MEETING_ID = Column("meeting_id", TEXT, "The vendor's id of the meeting (conversation, transcript), as text.")

VIEWS: tuple[View, ...] = (
    View("meetings", ("source", "meeting_id"), (
        SOURCE, MEETING_ID,
        Column("account", TEXT, "The account, organization or user the meeting belongs to "
                                "(per source: see the README)."),
        Column("title", TEXT, "The meeting's title."),
        Column("started_at", TIMESTAMPTZ, "When the meeting started (UTC)."),
        Column("ended_at", TIMESTAMPTZ, "When it ended (UTC); null while it runs or where the vendor does not say."),
        Column("duration_seconds", DOUBLE, "Its length in seconds."),
        Column("status", TEXT, "One of `scheduled`, `live`, `processing` (the vendor is still "
                               "transcribing or analysing it), `ready`, `failed`."),
        Column("language", TEXT, "The meeting's language, where the vendor gives one."),
        Column("deleted_at", TIMESTAMPTZ, "When the vendor deleted it (rows are kept: filter on "
                                          "`deleted_at is null` for live meetings)."),
    ), "One row per meeting of every loaded source, deleted ones included (`deleted_at` set)."),
    View("participants", ("source", "meeting_id", "participant_index"), (
        SOURCE, MEETING_ID,
        Column("participant_index", BIGINT, "0-based position in the vendor's list of participants."),
        Column("name", TEXT, "The participant's name."),
        Column("email", TEXT, "The participant's email, where known."),
        Column("role", TEXT, "Their part in the meeting as the vendor says it (`host`, `customer`, "
                             "`guest`, `participant`); null where the vendor has none."),
    ), "Who took part in each live (not deleted) meeting."),
    View("transcript_segments", ("source", "meeting_id", "segment_index"), (
        SOURCE, MEETING_ID,
        Column("segment_index", BIGINT, "0-based position of the segment in the transcript."),
        Column("speaker", TEXT, "Who spoke (the vendor's speaker label or name)."),
        Column("start_seconds", DOUBLE, "Seconds from the meeting's start to the segment's start."),
        Column("end_seconds", DOUBLE, "Seconds from the meeting's start to the segment's end: the "
                                      "vendor's, else the next segment's start; null only for a "
                                      "meeting's last segment when the vendor gives no end."),
        Column("text", TEXT, "What was said."),
    ), "Timed transcript segments of live meetings."),
    View("summaries", ("source", "meeting_id"), (
        SOURCE, MEETING_ID,
        Column("summary", TEXT, "The vendor's summary of the meeting, as text or Markdown."),
    ), "One summary per live meeting that has one.", where="TRIM(q.summary) <> ''"),
    View("action_items", ("source", "action_item_id"), (
        SOURCE,
        Column("action_item_id", TEXT, "The action item's id (the vendor's, or `<meeting_id>#<n>` "
                                       "where the vendor gives none)."),
        MEETING_ID,
        Column("text", TEXT, "What is to be done."),
        Column("owner", TEXT, "Who is to do it (a person's name), where known."),
        Column("status", TEXT, "`open` or `done`; null where the vendor tracks no status."),
        Column("due_date", DATE, "When it is due, where the vendor says."),
    ), "Action items from live meetings (and not deleted at the vendor)."),
    View("topics", ("source", "meeting_id", "topic"), (
        SOURCE, MEETING_ID,
        Column("topic", TEXT, "A topic or keyword of the meeting."),
    ), "The topics of each live meeting, once per meeting.", where="TRIM(q.topic) <> ''"),
)
VIEWS_BY_NAME = {v.name: v for v in VIEWS}
