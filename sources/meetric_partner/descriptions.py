"""Descriptions of the meetric_partner tables and columns (`sources/_common/descriptions.py`).
Add a table or a column here and `meeting-elt docs` shows it."""

TABLES = {
    "account": "The account the token belongs to (one row).",
    "users": "Active users of the account; users no longer listed get `deleted_at`.",
    "teams": "Teams, with their members in `teams__members`.",
    "departments": "Enabled departments.",
    "conversations": "One row per conversation in the API's 30-day window (and every one seen before).",
    "conversations__participants": "Who took part in a conversation, in the API's order.",
    "transcript_segments": "Timed transcript segments (sentences of calls, messages of chats).",
    "insights": "AI insights of a conversation: action items, questions, objections, next steps, decisions.",
    "conversation_topics": "Topics of a conversation, with mentions and share.",
    "summaries": "The AI summary of a conversation.",
    "webhook_deliveries": "Webhook deliveries of the last 7 days.",
    "recording_urls": "Signed recording URLs (only with `include_recordings`).",
}

COLUMNS = {
    "account": {"id": "The account's id."},
    "users": {"id": "The user's id (UUID).", "name": "Full name.", "email": "Email address."},
    "teams": {"id": "The team's id."},
    "departments": {"id": "The department's id."},
    "conversations": {
        "id": "The conversation's id (UUID).",
        "title": "The conversation's title.",
        "date": "When it took place (UTC).",
        "duration": "Length in seconds.",
        "status": "`processing`, `completed` or `failed`; only completed ones have a transcript, "
                  "insights and a summary.",
        "medium": "`call`, `video` or `chat`.",
        "updated_at": "When the vendor last changed it: the cursor of the incremental load.",
        "deleted_at": "When a sweep found it deleted at the vendor; null while it exists.",
    },
    "conversations__participants": {
        "name": "The participant's name.", "email": "The participant's email.",
        "role": "Their part in the conversation (`host`, `customer`, …).",
        "_dlt_parent_id": "The `_dlt_id` of the conversation.",
        "_dlt_list_idx": "Position in the conversation's participant list.",
    },
    "transcript_segments": {"sent_at": "A chat message's instant, as sent (text, with its offset)."},
    "insights": {
        "id": "The insight's id.", "conversation_id": "The conversation it belongs to.",
        "type": "`action_item`, `question`, `objection`, `next_step` or `decision`.",
        "text": "The insight.", "speaker_name": "Who said it.",
    },
    "conversation_topics": {"conversation_id": "The conversation.", "name": "The topic."},
    "summaries": {"conversation_id": "The conversation.", "summary": "The summary text (null when none)."},
    "webhook_deliveries": {"id": "The delivery's id."},
    "recording_urls": {"conversation_id": "The conversation."},
}
