"""Convo API: endpoints, limits, tiers and bookkeeping constants."""

from datetime import timedelta

DEFAULT_BASE_URL = "https://www.itsconvo.com/api/v1"
PAGE_SIZE_MAX = 100  # conversations per list page
CALENDAR_PAGE_MAX = 50  # calendar events per answer (`maxResults`)

# requests per rolling hour, per user; Enterprise answers carry no X-RateLimit-* headers, so
# there the source counts its own requests against this figure
HOURLY_LIMIT = {"starter": 100, "professional": 500, "enterprise": 2000}
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
FEEDBACK_MIN_SEGMENTS = 10  # Convo makes feedback only for transcripts this long

INSIGHT_KINDS = ("keypoints", "feedback")
CHILD_BATCH = 100  # conversations whose transcripts/insights are yielded together
