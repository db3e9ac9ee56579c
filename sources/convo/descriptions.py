"""Descriptions of the convo tables and columns (`sources/_common/descriptions.py`).
Add a table or a column here and `meeting-elt docs` shows it."""

TABLES = {
    "conversations": "One row per conversation.",
    "transcript_segments": "Transcript segments; Convo gives each a start instant only.",
    "keypoints": "AI keypoints of a conversation (sections, decisions, action items, …).",
    "keypoints__keypoints__sections": "The keypoints' sections, in order.",
    "keypoints__keypoints__sections__points": "The points of a section, in order.",
    "keypoints__keypoints__action_items": "The keypoints' action items.",
    "feedback": "AI coaching feedback on a conversation.",
    "calendar_events": "Google Calendar events around now (not meetings yet).",
    "user_profile": "The key's user and plan.",
    "webhooks": "Webhooks (Professional plan and above).",
}

CONVERSATION = "The conversation (`conversations.id`)."
COLUMNS = {
    "conversations": {
        "id": "The conversation's id (`sess_…`).", "title": "Its title.",
        "start_time": "When it started (UTC).", "end_time": "When it ended; null while recording.",
        "duration": "Length in minutes, as the API sends it.",
        "segment_count": "Segments in its transcript; 0 until transcribed.",
        "language": "Its language (a field the docs do not list; sent for some).",
        "deleted_at": "When a sweep found it deleted at the vendor; null while it exists.",
    },
    "transcript_segments": {"timestamp": "The segment's start instant, as sent (text, with its offset)."},
    "keypoints": {"conversation_id": CONVERSATION, "_dlt_id": "Row id; the parent of the keypoints' lists."},
    "keypoints__keypoints__sections": {"heading": "The section's heading.",
                                       "_dlt_parent_id": "The keypoints row (`keypoints._dlt_id`)."},
    "keypoints__keypoints__sections__points": {"value": "One point.",
                                               "_dlt_parent_id": "The section (`…sections._dlt_id`)."},
    "keypoints__keypoints__action_items": {"item": "What is to be done.", "owner": "Who is to do it.",
                                           "_dlt_parent_id": "The keypoints row (`keypoints._dlt_id`)."},
    "feedback": {"conversation_id": CONVERSATION},
    "calendar_events": {"id": "The event's id."},
    "user_profile": {"email": "The user's email: the profile's key (it has no id)."},
    "webhooks": {"id": "The webhook's id."},
}
