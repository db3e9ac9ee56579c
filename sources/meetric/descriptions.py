"""Descriptions of the meetric (workspace API) tables and columns
(`sources/_common/descriptions.py`). Add a table or a column here and `meeting-elt docs` shows it."""

TABLES = {
    "conversations": "One row per conversation of every configured account.",
    "insights": "AI insights: action items, topics and decisions share the table.",
    "action_items": "Action items, with their status and owner.",
    "users": "The accounts' users.",
    "team_managers": "Managers of each team.",
    "department_managers": "Managers of each department.",
    "insight_trends": "Daily aggregates of conversations, duration, sentiment and action items.",
    "insight_summary": "One summary row per day.",
}

ACCOUNT = "The account (`X-Account-ID`) the row was read from."
COLUMNS = {
    "conversations": {
        "id": "The conversation's id (`conv_…`).", "account_id": ACCOUNT,
        "title": "The conversation's title.", "date": "When it took place (UTC).",
        "duration": "Length in seconds.",
        "status": "`processing`, `processed` or `failed`.",
        "summary": "The AI summary, once processed.",
        "participants": "Who took part: a JSON list of `{id?, name, email}`.",
        "deleted_at": "When a sweep found it deleted at the vendor; null while it exists.",
    },
    "insights": {
        "id": "The insight's id (`insight_…`).", "account_id": ACCOUNT,
        "conversation_id": "The conversation it belongs to.",
        "type": "`action_item`, `topic` or `decision`.",
        "keywords": "Topics: a JSON list of keywords.",
        "deleted_at": "When the vendor deleted it.",
    },
    "action_items": {
        "id": "The action item's id (`ai_…`).", "account_id": ACCOUNT,
        "conversation_id": "The conversation it came from.", "content": "What is to be done.",
        "assigned_to": "The id of the user it is assigned to (`users.id`).",
        "due_date": "When it is due.", "status": "`pending`, `in_progress` or `completed`.",
        "deleted_at": "When the vendor deleted it.",
    },
    "users": {"id": "The user's id (`user_…`).", "account_id": ACCOUNT, "name": "Full name."},
    "team_managers": {"team_id": "The team.", "user_id": "The manager (`users.id`)."},
    "department_managers": {"department_id": "The department.", "user_id": "The manager (`users.id`)."},
    "insight_trends": {"account_id": ACCOUNT, "period_start": "The day."},
    "insight_summary": {"account_id": ACCOUNT, "period_start": "First day.", "period_end": "Last day."},
}
