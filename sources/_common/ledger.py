"""The record ledger: what a source knows about every record it loaded, in dlt state.

One schema for every source and entity, kept in the source's dlt state (so it travels to
the destination with the data it describes, and a fresh worker continues from it):

    source_state["ledger"][entity] = {
        "records": {id: {
            "version": str,          # the version of the row last loaded (a content hash,
                                     #   an updated_at, a count: the entity decides)
            "day": "YYYY-MM-DD…",    # the record's place on the list's own axis (meeting date,
                                     #   creation day; a date or an ISO instant): windows,
                                     #   cursors and sweeps are computed on it
            "group": str,            # the account or organization it belongs to, where a
                                     #   source reads several: deletions are checked per group
            "parent": str,           # the record of another entity it hangs off (a report's
                                     #   transcript), told when this one is added or deleted
            "owed": {part: version}, # per-item calls still owed, each with the version of
                                     #   the record it must be fetched for
            "done": {part: version}, # the version each part was last fetched for
            "partial": {part: [version, [tables]]},
                                     # a part fetched while only some of the tables it feeds
                                     #   were selected: still owed, for the others
            "digests": {part: str},  # the content digest of each part's body last loaded,
                                     #   for parts that have one (`Part.digest`)
            "waiting": true,         # the vendor is not done with it (still processing):
                                     #   listings reach back to it until it is final
            "check_at": iso,         # when an owed part may be tried again (back-off)
            "tries": int,            # how many times it was tried without success
        }},                          # (empty fields are left out; a record with only a
                                     #   version, day and group, and parts done for that
                                     #   version, is one string, "version|day|group" or
                                     #   "version|day|group|part,part": `compact`)
        "packed": str,               # the same records as one JSON text: how a run leaves
                                     #   them in the state (`pack_records`); unpacked into
                                     #   "records" on first use
        "cursor": {...},             # the listing strategy's own bookmarks
        "tables": [...],             # the tables this entity feeds (what a reset of them clears)
        "last_sweep_at": iso,        # when the last complete sweep ended
    }
    source_state["ledger"]["_marks"] = {table: {id: deleted_at}}
                                     # deletions found, owed to the warehouse until the
                                     # marked rows are handed to dlt

The ledger is written at one moment: when the rows it describes have been yielded. A run
that stops early never records a row it did not hand over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson

from .timeutil import iso, parse_instant


def row_hash(row: Any) -> str:
    """A short content hash of a row or list item: a record's `version` when the API gives
    none, so a record re-sent unchanged is told from a changed one."""
    return hashlib.blake2b(orjson.dumps(row, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()

LEDGER_KEY = "ledger"
# A record that owes nothing and waits for nothing, whose parts (if any) were all fetched for
# its current version (most records of most runs), is kept as one string, in memory and in
# the state: a dict of three strings costs about 350 bytes in Python and 50 in JSON, the
# string about 80 and 30 (a `done` dict adds some 300 and 25 more). meetric at 30,000
# conversations holds 144,000 records, and dlt decodes, copies, hashes and compresses the
# state several times per step.
COMPACT_FIELDS = ("version", "day", "group")
COMPACT_SEP = "|"
PARTS_SEP = ","  # between the names of the parts done, the string's optional fourth field
_COMPACT_KEYS = frozenset((*COMPACT_FIELDS, "done"))
MARKS_KEY = "_marks"
# The records as persisted: one JSON text per entity in place of one string per record. dlt
# decodes the whole state about eight times per run and walks every string of it each time
# (`custom_pua_decode_nested`): with meetric's 144,000 records at 30,000 conversations, a run
# with nothing new takes 1.65 s of CPU unpacked, 1.21 s packed.
PACKED_KEY = "packed"
MARK_RETENTION_DAYS = 90  # a mark never handed over (table not loaded yet) is dropped after this


def compact(entry: dict[str, Any]) -> str | dict[str, Any]:
    """A record's entry as one string when it holds only non-empty text of `COMPACT_FIELDS`
    without the separator, and parts `done` for exactly its `version` (else unchanged: a
    dict). The parts done are the string's fourth field: their names, comma-separated."""
    if not entry.keys() <= _COMPACT_KEYS or any(
            not isinstance(v, str) or not v or COMPACT_SEP in v for k, v in entry.items() if k != "done"):
        return entry
    done, version = entry.get("done"), entry.get("version")
    if done is not None and (not isinstance(done, dict) or not done or version is None or any(
            v != version or not isinstance(p, str) or not p or COMPACT_SEP in p or PARTS_SEP in p
            for p, v in done.items())):
        return entry
    text = COMPACT_SEP.join(entry.get(k, "") for k in COMPACT_FIELDS)
    return text if done is None else text + COMPACT_SEP + PARTS_SEP.join(done)


def _plain(value: Any) -> bool:
    """Text a compact entry can hold as one of its fields."""
    return isinstance(value, str) and bool(value) and COMPACT_SEP not in value


def expand(value: str | dict[str, Any]) -> dict[str, Any]:
    """A stored entry as a dict (a compact one as a new dict)."""
    if isinstance(value, str):
        fields = value.split(COMPACT_SEP)
        entry = {k: v for k, v in zip(COMPACT_FIELDS, fields[:3], strict=True) if v}
        if len(fields) == 4:
            entry["done"] = {part: entry["version"] for part in fields[3].split(PARTS_SEP)}
        return entry
    return value


class EntityLedger:
    """The ledger of one entity (a list of records, e.g. conversations).

    Entries are read with `get` and `entries` (a compact entry is handed out as a new dict:
    read it, never change it) and changed only by this class's methods, which store each
    entry back compact when it can be."""

    def __init__(self, state: dict, name: str) -> None:
        self.name = name
        self._state = state
        self.cursor: dict[str, Any] = state.setdefault("cursor", {})

    @property
    def records(self) -> dict[str, str | dict[str, Any]]:
        """The records, unpacked on first use. Looked up in the state on every use, never
        kept: another feed's end may pack them (`pack_records`) between two uses."""
        records = self._state.get("records")
        if records is None:
            records = self._state["records"] = records_of(self._state)
            self._state.pop(PACKED_KEY, None)
        return records

    # ---------------------------------------------------------------- reading
    def feeds(self, tables: list[str]) -> None:
        """Records the tables this entity feeds (for `meeting-elt reset --tables`)."""
        if self._state.get("tables") != tables:
            self._state["tables"] = tables

    def get(self, record_id: str) -> dict[str, Any] | None:
        value = self.records.get(record_id)
        return None if value is None else expand(value)

    def entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, entry) of every record, to read."""
        for record_id, value in self.records.items():
            yield record_id, expand(value)

    def waiting(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, entry) of the records the vendor is not done with (never compact ones)."""
        for record_id, entry in self.records.items():
            if isinstance(entry, dict) and entry.get("waiting"):
                yield record_id, entry

    def _entry(self, record_id: str) -> dict[str, Any] | None:
        """The entry to change (expanded in place); `_store` it when done."""
        value = self.records.get(record_id)
        if isinstance(value, str):
            value = self.records[record_id] = expand(value)
        return value

    def _store(self, record_id: str, entry: dict[str, Any]) -> None:
        self.records[record_id] = compact(entry)

    def __contains__(self, record_id: str) -> bool:
        return record_id in self.records

    def __len__(self) -> int:
        return len(self.records)

    def ids(self) -> Iterator[str]:
        return iter(self.records)

    def digest(self, record_id: str, part: str) -> str | None:
        """The content digest of the body last loaded for the record's part, if any."""
        value = self.records.get(record_id)
        return ((value if isinstance(value, dict) else {}).get("digests") or {}).get(part)

    def owed(self) -> Iterator[tuple[str, dict[str, str]]]:
        """(id, {part: version}) of every record with per-item calls still owed."""
        for record_id, entry in self.records.items():
            if isinstance(entry, dict) and entry.get("owed"):  # a compact entry owes nothing
                yield record_id, entry["owed"]

    def due(self, now: datetime) -> Iterator[tuple[str, dict[str, str]]]:
        """Owed records whose back-off has passed."""
        for record_id, owed in self.owed():
            check_at = self.records[record_id].get("check_at")  # owing: a dict
            if check_at is None or parse_instant(check_at) <= now:
                yield record_id, owed

    def waiting_days(self) -> list[str]:
        """Days of the records the vendor is not done with (listings reach back to them)."""
        return sorted(e["day"] for _, e in self.waiting() if e.get("day"))

    # ---------------------------------------------------------------- sweeps
    @property
    def last_sweep_at(self) -> datetime | None:
        return parse_instant(self._state.get("last_sweep_at"))

    def sweep_due(self, interval_hours: float, now: datetime) -> bool:
        """True when `interval_hours` have passed since the last complete sweep (0: always)."""
        last = self.last_sweep_at
        return last is None or interval_hours <= 0 or now - last >= timedelta(hours=interval_hours)

    def swept(self, now: datetime) -> None:
        self._state["last_sweep_at"] = iso(now)

    # ---------------------------------------------------------------- writing
    def see(self, record_id: str, version: str, day: str | None, *,
            parts: dict[str, str] | None = None, waiting: bool = False,
            loaded: bool = True, group: str | None = None,
            forget: Iterable[str] = (), parent: str | None = None) -> None:
        """Records what a listing showed. `parts` are the per-item calls this version needs,
        each with the version it must be fetched for: owed unless already done for it.
        `loaded` says the row itself was handed to dlt (a list row), so `version` is what
        the table now holds. `forget`: parts this version does not want whose `done` is
        dropped, so a later version that wants them fetches them again."""
        records = self.records
        value = records.get(record_id)
        if loaded and not parts and not waiting and parent is None and not forget and (
                value is None or (isinstance(value, str) and value.count(COMPACT_SEP) == 2)):
            # a plain record listed (most records of a list without per-item calls): it stays,
            # or becomes, one string, written without the dict in between
            _, old_day, old_group = value.split(COMPACT_SEP) if value is not None else ("", "", "")
            fields = (version, old_day if day is None else day, old_group if group is None else group)
            if _plain(version) and (day is None or _plain(day)) and (group is None or _plain(group)):
                records[record_id] = COMPACT_SEP.join(fields)
                return
        entry = self._entry(record_id)
        if entry is None:
            entry = {}
        for part in forget:
            entry.get("done", {}).pop(part, None)
        if "done" in entry and not entry["done"]:
            del entry["done"]
        if loaded:
            entry["version"] = version
        if day is not None:
            entry["day"] = day
        if group is not None:
            entry["group"] = group
        if parent is not None:
            entry["parent"] = parent
        if waiting:
            entry["waiting"] = True
        else:
            entry.pop("waiting", None)
        done = entry.get("done", {})
        before = entry.get("owed", {})
        owed = {part: v for part, v in (parts or {}).items() if done.get(part) != v}
        if owed:
            if owed != before:
                entry.pop("check_at", None)
                entry.pop("tries", None)
            entry["owed"] = owed
        else:
            entry.pop("owed", None)
            entry.pop("check_at", None)
            entry.pop("tries", None)
        self._store(record_id, entry)

    def covered(self, record_id: str, part: str, version: str, tables: Iterable[str]) -> bool:
        """True when `tables` of the part were already loaded for `version` by a run that
        selected only some of the part's tables (nothing new for such a run to fetch)."""
        partial = ((self.get(record_id) or {}).get("partial") or {}).get(part)
        return bool(partial) and partial[0] == version and set(tables) <= set(partial[1])

    def settle(self, record_id: str, part: str, version: str, *, digest: str | None = None,
               tables: Iterable[str] | None = None, all_tables: Iterable[str] = ()) -> None:
        """A part was fetched for `version` and its rows yielded: done for that version
        (`digest`: the content of the body loaded, where the part has one). When only
        `tables` of the part's `all_tables` were selected, it stays owed for the others."""
        entry = self._entry(record_id)
        if entry is None:
            return
        if tables is not None and not set(all_tables) <= set(tables):
            partial = entry.setdefault("partial", {})
            before = partial.get(part)
            loaded = set(tables) | (set(before[1]) if before and before[0] == version else set())
            if not set(all_tables) <= loaded:
                partial[part] = [version, sorted(loaded)]
                return
        (entry.get("partial") or {}).pop(part, None)
        if "partial" in entry and not entry["partial"]:
            entry.pop("partial")
        entry.setdefault("done", {})[part] = version
        if digest is not None:
            entry.setdefault("digests", {})[part] = digest
        owed = entry.get("owed", {})
        if owed.get(part) == version:
            owed.pop(part)
        if not owed:
            entry.pop("owed", None)
            entry.pop("check_at", None)
            entry.pop("tries", None)
        self._store(record_id, entry)

    def refetch(self, record_id: str, part: str) -> bool:
        """A part done that must be fetched again though the record's version did not move
        (what it returns changed elsewhere, e.g. a report was added to a transcript): owed
        again for the version it was done for. Nothing for a record unknown, still waiting
        (its part comes once the vendor is done), or never fetched; True when now owed."""
        entry = self._entry(record_id)
        if not entry or entry.get("waiting") or part not in entry.get("done", {}):
            return False
        entry.setdefault("owed", {})[part] = entry["done"].pop(part)
        entry.get("partial", {}).pop(part, None)
        entry.pop("check_at", None)
        entry.pop("tries", None)
        return True

    def drop_part(self, record_id: str, part: str) -> None:
        """A part that will never come (e.g. the scope is missing): owed no more."""
        entry = self._entry(record_id)
        if entry and part in entry.get("owed", {}):
            entry["owed"].pop(part)
            if not entry["owed"]:
                entry.pop("owed")
                entry.pop("check_at", None)
                entry.pop("tries", None)
            self._store(record_id, entry)

    def retry_later(self, record_id: str, now: datetime, *, first: timedelta,
                    cap: timedelta) -> datetime:
        """Backs a failing or not-ready record off: first, then doubling up to cap."""
        entry = self._entry(record_id)
        if entry is None:
            return now
        tries = int(entry.get("tries", 0)) + 1
        entry["tries"] = tries
        wait = min(first * (2 ** (tries - 1)), cap)
        entry["check_at"] = iso(now + wait)
        return now + wait

    def set_waiting(self, record_id: str, waiting: bool) -> None:
        entry = self._entry(record_id)
        if entry is None:
            return
        if waiting:
            entry["waiting"] = True
        else:
            entry.pop("waiting", None)
        self._store(record_id, entry)

    def give_up(self, record_id: str) -> None:
        """Owes nothing more and waits for nothing more (e.g. it left the API's window)."""
        entry = self._entry(record_id)
        if entry is not None:
            for key in ("owed", "waiting", "check_at", "tries"):
                entry.pop(key, None)
            self._store(record_id, entry)

    def forget(self, record_id: str) -> dict[str, Any] | None:
        """Removes a record (deleted at the vendor, or aged out of reach)."""
        value = self.records.pop(record_id, None)
        return None if value is None else expand(value)


def records_of(book: dict) -> dict[str, str | dict[str, Any]]:
    """The records of an entity's ledger state, packed or not (read-only use: a new dict
    when packed)."""
    records = book.get("records")
    if records is not None:
        return records
    packed = book.get(PACKED_KEY)
    return orjson.loads(packed) if packed else {}


def pack_records(source_state: dict, keep: Iterable[str] = ()) -> None:
    """Every entity's records as one JSON text (`PACKED_KEY`), as the state is persisted,
    but those of `keep` (entities whose feed still runs: packing theirs would only make
    them decode it again)."""
    kept = set(keep)
    for name, book in (source_state.get(LEDGER_KEY) or {}).items():
        if name == MARKS_KEY or name in kept or not isinstance(book, dict) or "records" not in book:
            continue
        records = book.pop("records")
        if records:
            book[PACKED_KEY] = orjson.dumps(records).decode()


class Ledger:
    """Every entity's ledger of one source, plus the deletion marks owed to the warehouse."""

    def __init__(self, source_state: dict) -> None:
        self._state = source_state.setdefault(LEDGER_KEY, {})
        self._marks: dict[str, dict[str, str]] = self._state.setdefault(MARKS_KEY, {})

    def entity(self, name: str) -> EntityLedger:
        if name == MARKS_KEY:
            raise ValueError(f"'{MARKS_KEY}' is reserved")
        return EntityLedger(self._state.setdefault(name, {}), name)

    # ---------------------------------------------------------------- deletion marks
    def mark_deleted(self, table: str, ids: Iterable[str], now: datetime) -> int:
        """Owes `deleted_at` marks for `ids` in `table`; returns how many are new."""
        marks = self._marks.setdefault(table, {})
        new = 0
        for record_id in ids:
            if record_id not in marks:
                marks[record_id] = iso(now)
                new += 1
        return new

    def marks(self, table: str) -> dict[str, str]:
        return dict(self._marks.get(table, {}))

    def tables_with_marks(self) -> list[str]:
        return [t for t, m in self._marks.items() if m]

    def unmark(self, table: str, ids: Iterable[str]) -> None:
        """Marks handed to dlt (or records that came back): owed no more."""
        marks = self._marks.get(table)
        if marks:
            for record_id in ids:
                marks.pop(record_id, None)

    def prune_marks(self, now: datetime) -> None:
        cutoff = now - timedelta(days=MARK_RETENTION_DAYS)
        for marks in self._marks.values():
            for record_id in [k for k, v in marks.items() if parse_instant(v) < cutoff]:
                del marks[record_id]
