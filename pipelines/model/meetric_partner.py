"""meetric_partner → the meetings model.

One account per token (`account.id`); conversations `processing` → `processing`,
`completed` → `ready`, `failed` → `failed`; action items are the `action_item` insights
(owner: who said it; no status, no due date); topics are `conversation_topics`; chat
messages have no end, so a segment without one ends where the next one starts.
"""

from .views import BIGINT, DOUBLE, TEXT, TIMESTAMPTZ

SOURCE = "meetric_partner"

READS = {
    "account": {"id": TEXT},
    "conversations": {"id": TEXT, "_dlt_id": TEXT, "title": TEXT, "date": TIMESTAMPTZ,
                      "duration": BIGINT, "status": TEXT, "deleted_at": TIMESTAMPTZ},
    "conversations__participants": {"_dlt_parent_id": TEXT, "_dlt_list_idx": BIGINT,
                                    "name": TEXT, "email": TEXT, "role": TEXT},
    "transcript_segments": {"meeting_id": TEXT, "segment_index": BIGINT, "speaker": TEXT,
                            "start_seconds": DOUBLE, "end_seconds": DOUBLE, "text": TEXT},
    "summaries": {"conversation_id": TEXT, "summary": TEXT},
    "insights": {"id": TEXT, "conversation_id": TEXT, "type": TEXT, "text": TEXT,
                 "speaker_name": TEXT},
    "conversation_topics": {"conversation_id": TEXT, "name": TEXT},
}

SELECTS = {
    "meetings": """
        SELECT c.id AS meeting_id,
               (SELECT MAX(a.id) FROM account AS a) AS account,
               c.title AS title,
               CAST(c.date AS TIMESTAMPTZ) AS started_at,
               CAST(c.date AS TIMESTAMPTZ) + CAST(c.duration AS BIGINT) * INTERVAL '1 second' AS ended_at,
               c.duration AS duration_seconds,
               CASE c.status WHEN 'processing' THEN 'processing'
                             WHEN 'completed' THEN 'ready'
                             WHEN 'failed' THEN 'failed' END AS status,
               NULL AS language,
               c.deleted_at AS deleted_at
        FROM conversations AS c
    """,
    "participants": """
        SELECT c.id AS meeting_id, p._dlt_list_idx AS participant_index,
               p.name AS name, p.email AS email, p.role AS role
        FROM conversations__participants AS p
        JOIN conversations AS c ON c._dlt_id = p._dlt_parent_id
        WHERE c.deleted_at IS NULL
    """,
    "transcript_segments": """
        SELECT s.meeting_id AS meeting_id, s.segment_index AS segment_index, s.speaker AS speaker,
               s.start_seconds AS start_seconds,
               COALESCE(s.end_seconds, LEAD(s.start_seconds) OVER (
                   PARTITION BY s.meeting_id ORDER BY s.segment_index)) AS end_seconds,
               s.text AS text
        FROM transcript_segments AS s
        LEFT JOIN conversations AS c ON c.id = s.meeting_id
        WHERE c.deleted_at IS NULL
    """,
    "summaries": """
        SELECT s.conversation_id AS meeting_id, s.summary AS summary
        FROM summaries AS s
        LEFT JOIN conversations AS c ON c.id = s.conversation_id
        WHERE c.deleted_at IS NULL
    """,
    "action_items": """
        SELECT i.id AS action_item_id, i.conversation_id AS meeting_id, i.text AS text,
               i.speaker_name AS owner, NULL AS status, NULL AS due_date
        FROM insights AS i
        LEFT JOIN conversations AS c ON c.id = i.conversation_id
        WHERE i.type = 'action_item' AND c.deleted_at IS NULL
    """,
    "topics": """
        SELECT DISTINCT t.conversation_id AS meeting_id, t.name AS topic
        FROM conversation_topics AS t
        LEFT JOIN conversations AS c ON c.id = t.conversation_id
        WHERE c.deleted_at IS NULL
    """,
}
