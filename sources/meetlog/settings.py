"""meetlog Export API: endpoints, limits, statuses and what the detail answers add."""

from datetime import timedelta

DEFAULT_BASE_URL = "https://meetlog.ru"
API_PREFIX = "api/v1/export"  # appended to base_url unless it already ends with it
PAGE_SIZE_MAX = 100
REQUESTS_PER_MINUTE = 60  # documented, per token
# each token is paced to 56 a minute after a burst of 3 (GCRA): at most 3 + 56 = 59
# requests in any sliding minute, one under the limit to absorb latency jitter; the burst
# lets a run that needs only the three first pages go without waiting
PACED_REQUESTS_PER_MINUTE = 56
PACE_BURST = 3
DETAIL_BATCH = 200  # records whose detail rows are yielded together
# a detail call that failed past its retries is owed and tried again on the next run
DETAIL_RETRY_FIRST = timedelta(0)

COMPLETED = "completed"
# statuses that will change by themselves: such records are re-checked every run
PROCESSING_STATUSES = frozenset({"processing", "pending", "queued", "in_progress"})

# fields only the detail answers carry (excluded from the list-field version hash)
DETAIL_FIELDS = {
    "transcripts": frozenset({"text", "summary", "file_size_mb", "report_ids"}),
    "reports": frozenset({"content"}),
}

SCOPES = {
    "transcripts": "export:transcripts",
    "reports": "export:reports",
    "projects": "export:projects",
}
SCOPE_TABLES = {
    "export:transcripts": ["transcripts"],
    "export:reports": ["reports"],
    "export:projects": ["projects", "project_transcripts"],
}
MEMBERSHIP_REMOVED = "_removed"  # hard-delete marker column of project_transcripts

# documented field types, read tolerantly (helpers.tidy): a value that stands for its type
# is repaired, one that cannot be read is kept as sent, and the record is named either way
FIELD_KINDS = {
    "transcripts": {"created_at": "instant", "duration_seconds": "int", "file_size_mb": "float",
                    "report_ids": "list", "status": "text", "title": "text", "text": "text",
                    "summary": "text"},
    "reports": {"created_at": "instant", "is_auto_generated": "bool", "status": "text",
                "template_name": "text", "content": "text"},
    "projects": {"created_at": "instant", "updated_at": "instant", "name": "text"},
}
