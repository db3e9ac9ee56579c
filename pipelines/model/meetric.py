"""meetric (workspace API) → the meetings model.

`account` is the conversation's `account_id`; `processing` → `processing`, `processed` →
`ready`, `failed` → `failed`; participants come from the conversation's `participants`
JSON list (no role); action items are `action_items` (their own table, which the
`action_item` insights duplicate), the owner the assigned user's name, `pending` and
`in_progress` → `open`, `completed` → `done`; topics are the keywords of `topic` insights.
The workspace API serves no timed transcripts.
"""

from .views import BIGINT, DATE, TEXT, TIMESTAMPTZ

SOURCE = "meetric"
JSON = "JSON"

READS = {
    "conversations": {"id": TEXT, "account_id": TEXT, "title": TEXT, "date": TIMESTAMPTZ,
                      "duration": BIGINT, "status": TEXT, "summary": TEXT,
                      "participants": JSON, "deleted_at": TIMESTAMPTZ},
    "action_items": {"id": TEXT, "account_id": TEXT, "conversation_id": TEXT, "content": TEXT,
                     "assigned_to": TEXT, "due_date": DATE, "status": TEXT,
                     "deleted_at": TIMESTAMPTZ},
    "users": {"id": TEXT, "account_id": TEXT, "name": TEXT},
    "insights": {"conversation_id": TEXT, "type": TEXT, "keywords": JSON,
                 "deleted_at": TIMESTAMPTZ},
}

SELECTS = {
    "meetings": """
        SELECT c.id AS meeting_id, c.account_id AS account, c.title AS title,
               CAST(c.date AS TIMESTAMPTZ) AS started_at,
               CAST(c.date AS TIMESTAMPTZ) + CAST(c.duration AS BIGINT) * INTERVAL '1 second' AS ended_at,
               c.duration AS duration_seconds,
               CASE c.status WHEN 'processing' THEN 'processing'
                             WHEN 'processed' THEN 'ready'
                             WHEN 'failed' THEN 'failed' END AS status,
               NULL AS language,
               c.deleted_at AS deleted_at
        FROM conversations AS c
    """,
    "participants": """
        SELECT c.id AS meeting_id, p.i AS participant_index,
               JSON_TEXT(c.participants, p.i, 'name') AS name,
               JSON_TEXT(c.participants, p.i, 'email') AS email,
               NULL AS role
        FROM conversations AS c
        CROSS JOIN JSON_INDEXES(c.participants) AS p(i)
        WHERE c.deleted_at IS NULL
    """,
    "summaries": """
        SELECT c.id AS meeting_id, c.summary AS summary
        FROM conversations AS c
        WHERE c.deleted_at IS NULL
    """,
    "action_items": """
        SELECT a.id AS action_item_id, a.conversation_id AS meeting_id, a.content AS text,
               COALESCE(u.name, a.assigned_to) AS owner,
               CASE a.status WHEN 'pending' THEN 'open'
                             WHEN 'in_progress' THEN 'open'
                             WHEN 'completed' THEN 'done' END AS status,
               a.due_date AS due_date
        FROM action_items AS a
        LEFT JOIN users AS u ON u.id = a.assigned_to AND u.account_id = a.account_id
        LEFT JOIN conversations AS c ON c.id = a.conversation_id
        WHERE a.deleted_at IS NULL AND c.deleted_at IS NULL
    """,
    "topics": """
        SELECT DISTINCT i.conversation_id AS meeting_id, JSON_TEXT(i.keywords, k.i) AS topic
        FROM insights AS i
        CROSS JOIN JSON_INDEXES(i.keywords) AS k(i)
        LEFT JOIN conversations AS c ON c.id = i.conversation_id
        WHERE i.type = 'topic' AND i.deleted_at IS NULL AND c.deleted_at IS NULL
    """,
}
