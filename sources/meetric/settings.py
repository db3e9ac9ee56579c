"""Meetric workspace API: endpoints, limits, windows and defaults."""

from datetime import timedelta

NAME = "meetric"
API_PREFIX = "api/v1"  # appended to base_url unless it already ends with it
PAGE_SIZE_MAX = 100  # the API answers 400 above this
DEFAULT_LOOKBACK_DAYS = 7
DEFAULT_SUMMARY_BACKFILL_DAYS = 90

# conversations still `processing` older than the re-read window are re-checked one date at a
# time, for this long after their date; past it the sweep is what catches them
PENDING_MAX_AGE = timedelta(days=30)
# insights are listed from the newest `created_at` day already loaded, less this overlap
INSIGHT_OVERLAP = timedelta(days=1)
# action items are read newest `updated_at` first down to the newest one loaded, less this
ACTION_ITEM_OVERLAP = timedelta(minutes=10)
# /insights/trends answers one row a day: ask for at most this many days per request
TRENDS_CHUNK_DAYS = 92

# list rows handed to dlt per Arrow page: dlt's cost per page is high, per row low, but a
# batch's parsed pages are alive until it is handed over: at 30,000 conversations the
# extract step's peak was 372 MB at 5,000 rows and 303 MB at 1,000, and no slower (2026-12-02)
BATCH_ROWS = 1000

ENDPOINTS = {
    "conversations": "conversations",
    "insights": "insights",
    "action_items": "action-items",
    "users": "users",
    "insight_trends": "insights/trends",
    "insight_summary": "insights/summary",
    "team_managers": "teams/{id}/managers",
    "department_managers": "departments/{id}/managers",
}

# the tables' primary keys (the aggregates have no id of their own: `account_id` joins theirs)
KEYS = {
    "conversations": "id", "insights": "id", "action_items": "id", "users": "id",
    "team_managers": ["team_id", "user_id"], "department_managers": ["department_id", "user_id"],
    "insight_trends": ["account_id", "period_start"],
    "insight_summary": ["account_id", "period_start", "period_end"],
}
# manager tables: the users' field that names the team or department
MANAGER_KINDS = {"team_managers": "team_id", "department_managers": "department_id"}
