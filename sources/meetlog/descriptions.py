"""Descriptions of the meetlog tables and columns (`sources/_common/descriptions.py`).
Add a table or a column here and `meeting-elt docs` shows it."""

TABLES = {
    "transcripts": "One row per transcript (a recorded meeting), with its text and summary.",
    "reports": "Reports made from a transcript with a template (Markdown `content`).",
    "projects": "Projects that group transcripts.",
    "project_transcripts": "Which transcripts are in which project.",
}

DELETED = "When the vendor deleted it; null while it exists."
COLUMNS = {
    "transcripts": {
        "id": "The transcript's id (UUID).", "title": "Its title.",
        "created_at": "When the recording was uploaded (UTC): meetlog has no meeting time.",
        "duration_seconds": "Length in seconds.", "status": "`processing`, `completed` or `failed`.",
        "language": "The transcript's language.", "summary": "The summary, once completed.",
        "deleted_at": DELETED,
    },
    "reports": {"id": "The report's id.", "transcription_id": "The transcript it was made from.",
                "deleted_at": DELETED},
    "projects": {"id": "The project's id.", "deleted_at": DELETED},
    "project_transcripts": {"project_id": "The project.", "transcript_id": "The transcript."},
}
