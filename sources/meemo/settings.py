"""Meemo external API: endpoints, limits and state keys."""

from datetime import timedelta

DEFAULT_BASE_URL = "https://api-meemo.glair.ai"
TOKEN_PATH = "api/auth/token/"
API = "api/v1/external/"  # every path ends with `/`: without it the API answers 301
ORGANIZATIONS = API + "webhooks/available-organizations/"
MEETINGS = API + "meeting/"
TOPICS = API + "topics/"
WEBHOOKS = API + "webhooks/"
WEBHOOK_EVENTS = API + "webhook-events/"
USAGE = API + "usage/"
UPCOMING = API + "calendar/upcoming-meetings/"
SUMMARY_WITH_VIDEO = "summary-with-video/"  # under meeting/{id}/

PAGE_SIZE_MAX = 100
# date filters are whole days in the vendor's time zone (not stated; UTC+7 seen): listings
# re-read this many days before the newest meeting already seen
OVERLAP_DAYS = 1
# unfinished meetings whose start is further back than this wait for the sweep instead of
# pulling every run's listing back to them
PENDING_CHASE_DAYS = 14
# webhook events change (retries, delivery) for a while after they are created
EVENT_LOOKBACK = timedelta(hours=24)
# an event still not final after this long is no longer re-read (retries end long before)
EVENT_RECHECK_MAX = timedelta(days=7)
# delivery statuses after which an event no longer changes (the API sends them upper case)
FINAL_EVENT_STATUSES = frozenset({"success", "failed", "delivered", "succeeded", "dead"})
UPCOMING_LIMIT = 100  # the most `calendar/upcoming-meetings/` answers with (no pagination)
# meetings of older builds have no stage objects, and their transcript answers an empty list
# until it is done: an empty one is fetched again after these growing intervals, for this long
RECHECK_FIRST = timedelta(minutes=30)
RECHECK_MAX_INTERVAL = timedelta(hours=24)
RECHECK_FOR = timedelta(days=14)
USAGE_DEFAULT_MONTHS = 12  # months of usage read on a first run without start_date
DETAIL_BATCH = 200  # meetings whose rows of per-meeting calls are handed to dlt together
TOKEN_REFRESH_MARGIN_SECONDS = 60.0

STAGE_DONE = "completed"
STAGE_WAITING = frozenset({"pending", "in_progress"})
FINISHED_STATUS = "past"
# fields that change on every call and must never make a row look changed
RECORDING_VOLATILE = frozenset({"recording_url", "video_url", "assets"})
# fields that must never reach a table (webhook signing secrets)
SECRET_FIELDS = frozenset({"secret_key", "secret", "signing_secret"})

# primary keys of the tables (besides `transcript_segments`), and the tables whose rows get
# `deleted_at` when the vendor no longer lists them
PRIMARY_KEYS: dict[str, str | list[str]] = {
    "organizations": "id", "meetings": "id", "transcripts": "meeting_id", "summaries": "meeting_id",
    "participants": ["meeting_id", "participant_index"], "recordings": "meeting_id", "topics": "id",
    "webhooks": "id", "webhook_events": "id", "usage": ["organization_id", "capability_name", "period_start"],
    "upcoming_meetings": "id"}
MARKED_TABLES = frozenset({"organizations", "meetings", "topics", "webhooks", "upcoming_meetings"})

# types of documented fields that are often null (so every table has them from the first
# load, typed), and of fields kept as JSON rather than split into child tables
STAGE_COLUMNS = {f"{stage}__{part}": "text" for stage in ("recording", "transcription", "summarization")
                 for part in ("status", "description")}
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "meetings": {"title": "text", "start_time": "timestamp", "end_time": "timestamp",
                 "created_at": "timestamp", "status": "text", "summary_complete": "bool",
                 "host_name": "text", "organization_id": "bigint", "location": "text",
                 "language": "text", "participant_count": "bigint", "duration_seconds": "double",
                 "num_cluster": "bigint", "host__id": "bigint", "host__name": "text",
                 "host__email": "text", "calendar_event": "json", "keywords": "json", **STAGE_COLUMNS},
    "transcripts": {"title": "text", "total_segments": "bigint", "served_segments": "bigint",
                    "withheld_segments": "bigint", "organization_id": "bigint"},
    "summaries": {"title": "text", "summary": "text", "summary_format": "text", "summary_json": "json",
                  "notes": "text", "keywords": "json", "organization_id": "bigint",
                  # from summary-with-video/ (never its signed URLs)
                  "record_id": "bigint", "record_summary": "text", "video_id": "text", "has_video": "bool",
                  "placeholder_message_markdown": "text", "citations": "json"},
    "participants": {"id": "bigint", "name": "text", "email": "text", "position": "text",
                     "department": "text", "organization_id": "bigint"},
    "recordings": {"title": "text", "duration": "double", "assets": "json", "recording_url": "text",
                   "format": "text", "video_url": "text", "video_format": "text", "organization_id": "bigint"},
    "organizations": {"name": "text", "organization_id": "bigint"},
    "topics": {"name": "text", "alias": "text", "language": "text", "organization_id": "bigint"},
    "webhooks": {"target_url": "text", "events": "json", "is_active": "bool", "description": "text",
                 "created_at": "timestamp", "organization_id": "bigint", "failure_count": "bigint",
                 "last_failure_reason": "text"},
    "webhook_events": {"webhook_id": "bigint", "event_uuid": "text", "event_type": "text", "status": "text",
                       "response_status": "bigint", "attempt_count": "bigint", "created_at": "timestamp",
                       "organization_id": "bigint"},
    "upcoming_meetings": {"organization_id": "bigint", "organization_name": "text", "event_id": "text",
                          "summary": "text", "description": "text", "start_time": "timestamp",
                          "end_time": "timestamp", "meeting_link": "text", "organizer_email": "text",
                          "status": "text"},
    "usage": {"organization_name": "text", "usage": "double", "quota": "double",
              "period_start": "date", "period_end": "date"},
}
