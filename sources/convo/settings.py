"""Convo API: endpoints, limits, tiers and bookkeeping constants."""

from datetime import timedelta

DEFAULT_BASE_URL = "https://www.itsconvo.com/api/v1"
PAGE_SIZE_MAX = 100  # conversations per list page
CALENDAR_PAGE_MAX = 50  # calendar events per answer (`maxResults`)

# requests per rolling hour, per user; Enterprise answers carry no X-RateLimit-* headers, so
# there the source counts its own requests against this figure
# (`subscription.tier` of the profile); a tier the source does not know is paced as Starter
HOURLY_LIMIT = {"starter": 100, "professional": 500, "enterprise": 2000}
UNKNOWN_TIER_LIMIT = HOURLY_LIMIT["starter"]
WEBHOOK_TIERS = frozenset({"professional", "enterprise"})
RATE_WINDOW = timedelta(hours=1)
DEFAULT_RESERVE = 5  # requests left unspent in the window (the app, Zapier, the next run's first call)

# between sweeps the list is read from the newest known `startTime` less this much, so a
# conversation uploaded a little after a later one still shows up
LOOKBACK = timedelta(hours=3)
# a conversation listed without an `endTime` or without segments is still being recorded or
# transcribed: it is re-listed for this long, then left to the sweep
OPEN_TIMEOUT = timedelta(days=2)
# a resumed full listing starts this many rows before where the last run stopped, so a
# deletion at the top of the list between runs cannot make it skip a row
RESUME_OVERLAP = 10

# keypoints/feedback that answered 404 are looked for again after 1h, 2h, 4h, … (capped),
# until the conversation is `ai_recheck_days` old
RECHECK_FIRST = timedelta(hours=1)
RECHECK_MAX = timedelta(hours=24)
# a transcript whose call failed (a vendor error that outlasted the retries) is tried again
# by the next run, without a back-off
TRANSCRIPT_RETRY = timedelta(0)
FEEDBACK_MIN_SEGMENTS = 10  # Convo makes feedback only for transcripts this long

INSIGHT_KINDS = ("keypoints", "feedback")
CHILD_BATCH = 100  # conversations whose transcripts/insights are yielded together
CALENDAR_CURSOR_OVERLAP = timedelta(seconds=1)  # the next `timeMin` is an answer's last start less this

# the cheap listings a run holds one request back for until they run, so a long backfill
# of per-conversation calls cannot starve them (webhooks only where the plan has them)
HELD_BACK = ("calendar_events", "webhooks")

# source state keys (beside the engine's `ledger`)
RECENT_KEY = "recent_requests"  # {run started at: requests sent}, the last hour (headerless keys)
CREDITS_KEY = "ai_generation"  # {"month": "YYYY-MM", "spent": n}

PROFILE_TABLE = "user_profile"

# Column types fixed from the first load, so that a malformed value in the first record dlt
# sees cannot type a column (it goes to a variant column `<col>__v_<type>` instead), and
# whole scores (`9`) and fractional ones (`7.5`) share one double column.
_TS = {"data_type": "timestamp", "nullable": True}
_INT = {"data_type": "bigint", "nullable": True}
_DOUBLE = {"data_type": "double", "nullable": True}
CONVERSATION_COLUMNS = {"start_time": _TS, "end_time": _TS, "duration": _DOUBLE, "segment_count": _INT}
# null on Enterprise ("unlimited"): typed here so the columns exist from the first load
PROFILE_COLUMNS = {"created_at": _TS, "subscription__current_period_end": _TS,
                   "profile_picture_url": {"data_type": "text", "nullable": True},
                   "api_usage__ai_generations__used": _INT, "api_usage__ai_generations__limit": _INT,
                   "api_usage__ai_generations__remaining": _INT, "api_usage__ai_generations__resets_at": _TS}
KEYPOINTS_COLUMNS = {"created_at": _TS}
SCORE_CATEGORIES = ("clarity", "listening", "time_management", "collaboration", "decision_making")
FEEDBACK_COLUMNS = {"created_at": _TS, "overall_score": _DOUBLE, "talk_listen_ratio": _DOUBLE,
                    **{f"category_scores__{name}": _DOUBLE for name in SCORE_CATEGORIES}}
CALENDAR_COLUMNS = {"start__date_time": _TS, "end__date_time": _TS}


def columns(hints: dict[str, dict]) -> dict[str, dict]:
    """A fresh copy of column hints (dlt writes into hint dicts: never share one)."""
    return {name: dict(hint) for name, hint in hints.items()}
