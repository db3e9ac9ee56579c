"""Descriptions of the meemo tables and columns (`sources/_common/descriptions.py`).
Add a table or a column here and `meeting-elt docs` shows it."""

TABLES = {
    "organizations": "Organizations the application may read.",
    "meetings": "One row per meeting: the list item plus its detail.",
    "transcript_segments": "Timed transcript segments as served (confidential ones are left out).",
    "transcripts": "Per transcript: how many segments there are, were served and were withheld.",
    "summaries": "The summary of a meeting (always text; legacy JSON rendered as Markdown).",
    "participants": "Who took part in a meeting, in the API's order.",
    "recordings": "Recording assets (only with `include_recordings`).",
    "topics": "An organization's topic definitions.",
    "webhooks": "Webhooks (their signing secret is never stored).",
    "webhook_events": "The webhooks' delivery log.",
    "usage": "Usage against quota, per organization, capability and month.",
    "upcoming_meetings": "Calendar events ahead (not meetings yet).",
}

ORG = "The organization the row belongs to."
COLUMNS = {
    "organizations": {"id": "The organization's id."},
    "meetings": {
        "id": "The meeting's id (an integer).",
        "meeting_id": "The meeting's id as text, as `meeting_id` holds it in every table that refers to it.",
        "organization_id": ORG, "title": "The meeting's title.",
        "start_time": "When it started (for bot meetings: when the bot joined), UTC.",
        "end_time": "When it ended (null until it ends), UTC.",
        "duration_seconds": "`end_time − start_time` in seconds (null while running).",
        "status": "`upcoming`, `ongoing`, `recording` or `past`.",
        "recording__status": "Recording stage: `pending`, `in_progress`, `completed` or `failed`.",
        "transcription__status": "Transcription stage, as `recording__status`.",
        "summarization__status": "Summarization stage, as `recording__status`.",
        "language": "The meeting's language.", "host__id": "The host's user id.",
        "keywords": "The meeting's keywords (JSON list).",
        "deleted_at": "When a sweep found it deleted at the vendor; null while it exists.",
    },
    "transcript_segments": {"organization_id": ORG},
    "transcripts": {"meeting_id": "The meeting.", "organization_id": ORG},
    "summaries": {"meeting_id": "The meeting.", "organization_id": ORG,
                  "summary": "The summary as text (Markdown)."},
    "participants": {"meeting_id": "The meeting.", "participant_index": "Position in the list.",
                     "id": "The user's id; null for external guests.", "name": "Name.",
                     "email": "Email, where known.", "organization_id": ORG},
    "recordings": {"meeting_id": "The meeting."},
    "topics": {"id": "The topic's id.", "organization_id": ORG},
    "webhooks": {"id": "The webhook's id.", "organization_id": ORG},
    "webhook_events": {"id": "The event's id.", "organization_id": ORG},
    "usage": {"organization_id": ORG, "capability_name": "The capability metered.",
              "period_start": "First day of the month."},
    "upcoming_meetings": {"id": "The calendar entry's id."},
}
