"""What a run did, for the CLI's summary: requests, retries, skips, what waits for next run."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from dlt.common import logger

from .errors import BudgetExhausted
from .redaction import redact

BAD_RECORDS_LOGGED_PER_TABLE = 20  # more are counted and kept in the report, not logged

_reports: dict[str, RunReport] = {}
# where a run's notes go besides the report: dlt's logger (a user's own pipeline, Airflow,
# Dagster), unless a caller that prints the report itself (the CLI's summary) turns it off,
# so that cron logs do not carry every note twice
_log_notes = True
_reports_lock = threading.Lock()


@dataclass(frozen=True)
class BadRecord:
    """A record whose data was not as documented: loaded repaired (`loaded`), or not loaded."""

    table: str
    record_id: str
    problem: str
    loaded: bool


@dataclass
class RunReport:
    """Counters and notes for one source in one run. Thread-safe; never holds a secret."""

    source: str
    requests: int = 0  # answered or failed attempts
    sent: int = 0  # attempts counted against the budget
    retries: int = 0
    status_counts: Counter = field(default_factory=Counter)
    skipped: dict[str, str] = field(default_factory=dict)  # table -> why
    waiting: dict[str, str] = field(default_factory=dict)  # what -> left for the next run
    warnings: list[str] = field(default_factory=list)
    bad_records: list[BadRecord] = field(default_factory=list)
    marked: Counter = field(default_factory=Counter)  # table -> rows marked deleted this run
    items: int = 0  # records whose per-item calls were made (towards `checkpoint_items`)
    # the run stopped at its checkpoint (`checkpoint_items`): what it fetched loads with its
    # state, and another run right away continues (`pipelines.runner.run_until_done`)
    more_to_do: bool = False
    owed: int = 0  # records that still owe per-item calls when the run ended (every entity that ran)
    settled: int = 0  # per-item calls whose rows this run handed over (a round's progress)
    _bad_seen: set[BadRecord] = field(default_factory=set, repr=False)
    _bad_per_table: Counter = field(default_factory=Counter, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_request(self, budget: int | None) -> None:
        """Counts one request out of the run's `max_requests` budget; raises when it is spent."""
        with self._lock:
            if budget and self.sent >= budget:
                raise BudgetExhausted(f"the run's request budget (max_requests={budget}) is spent")
            self.sent += 1

    def count_item(self) -> int:
        """Counts one record fetched; returns how many this run fetched."""
        with self._lock:
            self.items += 1
            return self.items

    def fold(self, earlier: RunReport) -> RunReport:
        """This report with an earlier round of the same run folded in (`run_until_done`):
        counters and notes of both; what waits (and whether more is owed) as this one says."""
        with earlier._lock:
            self.requests += earlier.requests
            self.sent += earlier.sent
            self.retries += earlier.retries
            self.items += earlier.items
            self.settled += earlier.settled
            self.marked.update(earlier.marked)
            self.status_counts.update(earlier.status_counts)
            self.skipped = {**earlier.skipped, **self.skipped}
            self.warnings = [*earlier.warnings, *(w for w in self.warnings if w not in earlier.warnings)]
            bad = [b for b in self.bad_records if b not in earlier._bad_seen]
            self.bad_records = [*earlier.bad_records, *bad]
            self._bad_seen |= earlier._bad_seen
        return self

    def count_request(self, status: int | str, *, retry: bool) -> None:
        with self._lock:
            self.requests += 1
            self.retries += int(retry)
            self.status_counts[status] += 1

    def skip(self, table: str, reason: str) -> None:
        """Records (once per table) that a table was skipped, and logs one warning."""
        reason = redact(reason)
        with self._lock:
            if table in self.skipped:
                return
            self.skipped[table] = reason
        _log("warning", f"{self.source}: skipping table '{table}': {reason}")

    def wait(self, what: str, note: str) -> None:
        """Records what is left for the next run."""
        with self._lock:
            self.waiting[what] = redact(note)
        _log("info", f"{self.source}: left for the next run: {what}: {note}")

    def bad_record(self, table: str, record_id: object, problem: str, *, loaded: bool) -> None:
        """Names a malformed record (once per table, id and problem): `loaded` when it was
        loaded with its raw values kept or repaired, else it was left out of `table`."""
        entry = BadRecord(table, redact(str(record_id)), redact(problem), loaded)
        with self._lock:
            if entry in self._bad_seen:
                return
            self._bad_seen.add(entry)
            self.bad_records.append(entry)
            self._bad_per_table[table] += 1
            logged = self._bad_per_table[table]
        if logged <= BAD_RECORDS_LOGGED_PER_TABLE:
            what = "loaded as sent" if loaded else "NOT loaded"
            _log("warning", f"{self.source}: bad record in '{table}' ({what}): {entry.record_id}: {entry.problem}")

    def count_marked(self, table: str, rows: int) -> None:
        with self._lock:
            self.marked[table] += rows

    def warn(self, message: str) -> None:
        message = redact(message)
        with self._lock:
            if message in self.warnings:
                return
            self.warnings.append(message)
        _log("warning", f"{self.source}: {message}")


def log_notes(enabled: bool) -> None:
    """Whether reports also send their notes to dlt's logger (default: yes)."""
    global _log_notes
    _log_notes = enabled


def _log(level: str, message: str) -> None:
    if _log_notes:
        getattr(logger, level)(message)


def new_report(source: str) -> RunReport:
    """Starts a fresh report for `source` (called when the source function runs)."""
    report = RunReport(source)
    with _reports_lock:
        _reports[source] = report
    return report


def get_report(source: str) -> RunReport | None:
    """The report of the latest run of `source` in this process."""
    with _reports_lock:
        return _reports.get(source)
