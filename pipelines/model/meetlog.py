"""meetlog → the meetings model.

A meetlog transcript is a meeting. meetlog knows when a recording was uploaded, not when
the meeting happened: `started_at` is the transcript's `created_at`, `ended_at` is null.
`processing` → `processing`, `completed` → `ready`, `failed` → `failed`. The summary is
the transcript's `summary` (reports stay in `meetlog.reports`). meetlog has no account
field, participants, timed segments, action items or topics.
"""

from .views import BIGINT, TEXT, TIMESTAMPTZ

SOURCE = "meetlog"

READS = {
    "transcripts": {"id": TEXT, "title": TEXT, "created_at": TIMESTAMPTZ,
                    "duration_seconds": BIGINT, "status": TEXT, "language": TEXT,
                    "summary": TEXT, "deleted_at": TIMESTAMPTZ},
}

SELECTS = {
    "meetings": """
        SELECT t.id AS meeting_id, NULL AS account, t.title AS title,
               CAST(t.created_at AS TIMESTAMPTZ) AS started_at,
               NULL AS ended_at,
               t.duration_seconds AS duration_seconds,
               CASE t.status WHEN 'processing' THEN 'processing'
                             WHEN 'completed' THEN 'ready'
                             WHEN 'failed' THEN 'failed' END AS status,
               t.language AS language,
               t.deleted_at AS deleted_at
        FROM transcripts AS t
    """,
    "summaries": """
        SELECT t.id AS meeting_id, t.summary AS summary
        FROM transcripts AS t
        WHERE t.deleted_at IS NULL
    """,
}
