"""meemo → the meetings model.

`account` is the meeting's `organization_id`. Status: `upcoming` → `scheduled`; `ongoing`
and `recording` → `live`; `past` → `failed` when a processing stage (recording,
transcription, summarization) failed, `processing` while one is pending or in progress,
`ready` once the summary is done (`summarization` completed, or `summary_complete` where the
build sends no stage objects), else `processing` (the source keeps such a meeting pending).
Ids are integers at the source: cast to text here. Participants' role: `host` (the
meeting's host), `guest` (no user id: external), else `participant`. Topics are the
meeting's `keywords`. Meemo has no action items.
"""

from .views import BIGINT, BOOLEAN, DOUBLE, TEXT, TIMESTAMPTZ

SOURCE = "meemo"
JSON = "JSON"
STAGES_RUNNING = "('pending', 'in_progress')"

READS = {
    "meetings": {"id": BIGINT, "organization_id": BIGINT, "title": TEXT,
                 "start_time": TIMESTAMPTZ, "end_time": TIMESTAMPTZ, "duration_seconds": DOUBLE,
                 "status": TEXT, "summary_complete": BOOLEAN, "recording__status": TEXT, "transcription__status": TEXT,
                 "summarization__status": TEXT, "language": TEXT, "host__id": BIGINT,
                 "keywords": JSON, "deleted_at": TIMESTAMPTZ},
    "participants": {"meeting_id": TEXT, "participant_index": BIGINT, "id": BIGINT,
                     "name": TEXT, "email": TEXT},
    "transcript_segments": {"meeting_id": TEXT, "segment_index": BIGINT, "speaker": TEXT,
                            "start_seconds": DOUBLE, "end_seconds": DOUBLE, "text": TEXT},
    "summaries": {"meeting_id": TEXT, "summary": TEXT},
}

SELECTS = {
    "meetings": f"""
        SELECT CAST(m.id AS TEXT) AS meeting_id, CAST(m.organization_id AS TEXT) AS account,
               m.title AS title,
               CAST(m.start_time AS TIMESTAMPTZ) AS started_at,
               CAST(m.end_time AS TIMESTAMPTZ) AS ended_at,
               COALESCE(m.duration_seconds,
                        EXTRACT(EPOCH FROM CAST(m.end_time AS TIMESTAMPTZ) - CAST(m.start_time AS TIMESTAMPTZ))) AS duration_seconds,
               CASE WHEN m.status = 'upcoming' THEN 'scheduled'
                    WHEN m.status IN ('ongoing', 'recording') THEN 'live'
                    WHEN 'failed' IN (m.recording__status, m.transcription__status,
                                      m.summarization__status) THEN 'failed'
                    WHEN m.recording__status IN {STAGES_RUNNING}
                         OR m.transcription__status IN {STAGES_RUNNING}
                         OR m.summarization__status IN {STAGES_RUNNING} THEN 'processing'
                    WHEN m.status = 'past' AND (m.summary_complete
                                                OR m.summarization__status = 'completed') THEN 'ready'
                    WHEN m.status = 'past' THEN 'processing' END AS status,
               m.language AS language,
               m.deleted_at AS deleted_at
        FROM meetings AS m
    """,
    "participants": """
        SELECT CAST(p.meeting_id AS TEXT) AS meeting_id, p.participant_index AS participant_index,
               p.name AS name, p.email AS email,
               CASE WHEN p.id = m.host__id THEN 'host'
                    WHEN p.id IS NULL THEN 'guest'
                    ELSE 'participant' END AS role
        FROM participants AS p
        LEFT JOIN meetings AS m ON CAST(m.id AS TEXT) = p.meeting_id
        WHERE m.deleted_at IS NULL
    """,
    "transcript_segments": """
        SELECT s.meeting_id AS meeting_id, s.segment_index AS segment_index, s.speaker AS speaker,
               s.start_seconds AS start_seconds,
               COALESCE(s.end_seconds, LEAD(s.start_seconds) OVER (
                   PARTITION BY s.meeting_id ORDER BY s.segment_index)) AS end_seconds,
               s.text AS text
        FROM transcript_segments AS s
        LEFT JOIN meetings AS m ON CAST(m.id AS TEXT) = s.meeting_id
        WHERE m.deleted_at IS NULL
    """,
    "summaries": """
        SELECT CAST(s.meeting_id AS TEXT) AS meeting_id, s.summary AS summary
        FROM summaries AS s
        LEFT JOIN meetings AS m ON CAST(m.id AS TEXT) = s.meeting_id
        WHERE m.deleted_at IS NULL
    """,
    "topics": """
        SELECT DISTINCT CAST(m.id AS TEXT) AS meeting_id, JSON_TEXT(m.keywords, k.i) AS topic
        FROM meetings AS m
        CROSS JOIN JSON_INDEXES(m.keywords) AS k(i)
        WHERE m.deleted_at IS NULL
    """,
}
