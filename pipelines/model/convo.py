"""convo → the meetings model.

A key belongs to one user: `account` is that user's email (`user_profile`, keyed by email).
Convo has no meeting status: no `endTime` → `live` (still recording), ended without
segments → `processing` (not transcribed yet), else `ready`. `duration_seconds` is
`endTime − startTime` (the API's `duration` is whole minutes). Segments have a start
instant only, so each ends where the next starts. The keypoints are Convo's summary: their
sections as Markdown (`## heading`, `- point`); their headings are the topics; their
`actionItems` are the action items (id `<conversation id>#<n>`, no status, no due date).
Convo lists no participants.
"""

from .views import BIGINT, DOUBLE, TEXT, TIMESTAMPTZ

SOURCE = "convo"

READS = {
    "user_profile": {"email": TEXT},
    "conversations": {"id": TEXT, "title": TEXT, "start_time": TIMESTAMPTZ,
                      "end_time": TIMESTAMPTZ, "duration": DOUBLE, "segment_count": BIGINT,
                      "language": TEXT, "deleted_at": TIMESTAMPTZ},
    "transcript_segments": {"meeting_id": TEXT, "segment_index": BIGINT, "speaker": TEXT,
                            "start_seconds": DOUBLE, "end_seconds": DOUBLE, "text": TEXT},
    "keypoints": {"conversation_id": TEXT, "_dlt_id": TEXT},
    "keypoints__keypoints__sections": {"_dlt_id": TEXT, "_dlt_parent_id": TEXT,
                                       "_dlt_list_idx": BIGINT, "heading": TEXT},
    "keypoints__keypoints__sections__points": {"_dlt_parent_id": TEXT, "_dlt_list_idx": BIGINT,
                                               "value": TEXT},
    "keypoints__keypoints__action_items": {"_dlt_parent_id": TEXT, "_dlt_list_idx": BIGINT,
                                           "item": TEXT, "owner": TEXT},
}

SELECTS = {
    "meetings": """
        SELECT c.id AS meeting_id,
               (SELECT MAX(u.email) FROM user_profile AS u) AS account,
               c.title AS title,
               CAST(c.start_time AS TIMESTAMPTZ) AS started_at,
               CAST(c.end_time AS TIMESTAMPTZ) AS ended_at,
               COALESCE(EXTRACT(EPOCH FROM CAST(c.end_time AS TIMESTAMPTZ) - CAST(c.start_time AS TIMESTAMPTZ)),
                        c.duration * 60) AS duration_seconds,
               CASE WHEN c.end_time IS NULL THEN 'live'
                    WHEN COALESCE(c.segment_count, 0) = 0 THEN 'processing'
                    ELSE 'ready' END AS status,
               c.language AS language,
               c.deleted_at AS deleted_at
        FROM conversations AS c
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
        SELECT k.conversation_id AS meeting_id,
               (SELECT STRING_AGG(CONCAT('## ', h.heading, CHR(10),
                                         (SELECT STRING_AGG(CONCAT('- ', p.value), CHR(10)
                                                            ORDER BY p._dlt_list_idx)
                                          FROM keypoints__keypoints__sections__points AS p
                                          WHERE p._dlt_parent_id = h._dlt_id)),
                                  CONCAT(CHR(10), CHR(10)) ORDER BY h._dlt_list_idx)
                FROM keypoints__keypoints__sections AS h
                WHERE h._dlt_parent_id = k._dlt_id) AS summary
        FROM keypoints AS k
        LEFT JOIN conversations AS c ON c.id = k.conversation_id
        WHERE c.deleted_at IS NULL
    """,
    "action_items": """
        SELECT CONCAT(k.conversation_id, '#', CAST(a._dlt_list_idx AS TEXT)) AS action_item_id,
               k.conversation_id AS meeting_id, a.item AS text, a.owner AS owner,
               NULL AS status, NULL AS due_date
        FROM keypoints__keypoints__action_items AS a
        JOIN keypoints AS k ON k._dlt_id = a._dlt_parent_id
        LEFT JOIN conversations AS c ON c.id = k.conversation_id
        WHERE c.deleted_at IS NULL
    """,
    "topics": """
        SELECT DISTINCT k.conversation_id AS meeting_id, h.heading AS topic
        FROM keypoints__keypoints__sections AS h
        JOIN keypoints AS k ON k._dlt_id = h._dlt_parent_id
        LEFT JOIN conversations AS c ON c.id = k.conversation_id
        WHERE c.deleted_at IS NULL
    """,
}
