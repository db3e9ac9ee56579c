"""Meetric partner REST API: endpoints, limits and state keys."""

from datetime import timedelta

API_PREFIX = "api/v1/rest"  # appended to base_url unless it already ends with it
PAGE_SIZE_MAX = 25
WINDOW = timedelta(days=30)
# `from` is sent a little inside the window, so clock skew never makes it a 400
WINDOW_SAFETY = timedelta(minutes=5)
# between sweeps, the list is re-read this far behind the newest conversation already seen
LOOKBACK = timedelta(hours=2)
# known conversations this close to the window's edge may have aged out, not been deleted
DELETION_MARGIN = timedelta(hours=1)
REQUESTS_PER_MINUTE = 60
DAILY_CONVERSATION_QUOTA = 1000
DETAIL_BATCH = 200  # conversations whose child rows are yielded together
NIL_ID = "00000000-0000-0000-0000-000000000000"  # probes scopes without touching the quota

SCOPE_TABLES = {
    "users": ["users"],
    "teams": ["teams"],
    "departments": ["departments"],
    "conversations": ["conversations", "summaries"],
    "transcripts": ["transcript_segments"],
    "insights": ["insights", "conversation_topics"],
    "recordings": ["recording_urls"],
}

STATUSES = ("processing", "completed", "failed")
# column types declared up front, so that a malformed first value never decides a column's
# type: a bad value then goes to a variant column (`date__v_text`) and the column stays typed
CONVERSATION_COLUMNS = {
    "date": {"data_type": "timestamp", "nullable": True},
    "updated_at": {"data_type": "timestamp", "nullable": True},
    "duration": {"data_type": "bigint", "nullable": True},
}
SUMMARY_COLUMNS = {"updated_at": {"data_type": "timestamp", "nullable": True}}
INSIGHT_COLUMNS = {"start": {"data_type": "double", "nullable": True}}
TOPIC_COLUMNS = {"mentions": {"data_type": "bigint", "nullable": True},
                 "share": {"data_type": "double", "nullable": True}}
