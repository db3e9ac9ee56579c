"""What a run did, for the CLI's summary: requests, retries, skips, what waits for next run."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from dlt.common import logger

from .errors import BudgetExhausted
from .redaction import redact

_reports: dict[str, RunReport] = {}
_reports_lock = threading.Lock()


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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_request(self, budget: int | None) -> None:
        """Counts one request out of the run's `max_requests` budget; raises when it is spent."""
        with self._lock:
            if budget and self.sent >= budget:
                raise BudgetExhausted(f"the run's request budget (max_requests={budget}) is spent")
            self.sent += 1

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
        logger.warning(f"{self.source}: skipping table '{table}': {reason}")

    def wait(self, what: str, note: str) -> None:
        """Records what is left for the next run."""
        with self._lock:
            self.waiting[what] = redact(note)
        logger.info(f"{self.source}: left for the next run: {what}: {note}")

    def warn(self, message: str) -> None:
        message = redact(message)
        with self._lock:
            if message in self.warnings:
                return
            self.warnings.append(message)
        logger.warning(f"{self.source}: {message}")


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
