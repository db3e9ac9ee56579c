"""The ledger keeps a record that owes and waits for nothing as one string ("version|day|group"),
in memory and in dlt's state, and every reader and writer sees the same entry either way; a run
leaves each entity's records in the state as one JSON text (`pack_records`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dlt
import orjson

from simulators.meetric import MeetricSimulator
from sources._common.ledger import (
    COMPACT_SEP,
    MARKS_KEY,
    PACKED_KEY,
    EntityLedger,
    Ledger,
    compact,
    expand,
    pack_records,
    records_of,
)
from tests.meetric_workspace_helpers import load
from tests.utils import make_pipeline

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_plain_record_is_one_string_and_reads_back_as_its_fields():
    state: dict = {}
    book = EntityLedger(state, "conversations")
    book.see("c1", "v1", "2026-11-30", group="acc_1")
    book.see("c2", "v2", None)
    assert state["records"] == {"c1": "v1|2026-11-30|acc_1", "c2": "v2||"}
    assert book.get("c1") == {"version": "v1", "day": "2026-11-30", "group": "acc_1"}
    assert book.get("c2") == {"version": "v2"}
    assert dict(book.entries())["c1"] == book.get("c1")
    assert book.forget("c2") == {"version": "v2"} and "c2" not in book


def test_a_record_that_owes_or_waits_is_a_dict_again_and_compact_once_settled():
    state: dict = {}
    book = EntityLedger(state, "conversations")
    book.see("c1", "v1", "2026-11-30", group="acc_1")
    book.see("c1", "v2", "2026-11-30", group="acc_1", parts={"detail": "v2"}, waiting=True)
    assert isinstance(state["records"]["c1"], dict)
    assert list(book.owed()) == [("c1", {"detail": "v2"})] and book.waiting_days() == ["2026-11-30"]
    book.retry_later("c1", NOW, first=timedelta(minutes=30), cap=timedelta(days=1))
    assert not list(book.due(NOW)) and list(book.due(NOW + timedelta(hours=1)))
    book.set_waiting("c1", False)
    book.settle("c1", "detail", "v2")
    assert state["records"]["c1"] == "v2|2026-11-30|acc_1|detail"  # done for its version: a string
    assert book.get("c1")["done"] == {"detail": "v2"}
    assert book.refetch("c1", "detail") and list(book.owed()) == [("c1", {"detail": "v2"})]
    book.drop_part("c1", "detail")
    assert not list(book.owed())


def test_values_that_cannot_be_told_apart_in_a_string_stay_a_dict():
    # the separator in a value, and an empty version (a string would read it as "never loaded")
    for entry in ({"version": f"2026{COMPACT_SEP}x"}, {"version": ""}, {"version": "v", "day": 3},
                  {"version": "v", "waiting": True}):
        assert compact(entry) is entry and expand(compact(entry)) == entry
    state: dict = {}
    book = EntityLedger(state, "t")
    book.see("a", f"odd{COMPACT_SEP}version", "2026-11-30")
    assert book.get("a")["version"] == f"odd{COMPACT_SEP}version"


def test_a_ledger_written_by_the_code_before_is_read_and_compacted_as_it_is_touched():
    old = {"records": {"c1": {"version": "v1", "day": "2026-11-30", "group": "acc_1"},
                       "c2": {"version": "v2", "owed": {"detail": "v2"}}}}
    state = orjson.loads(orjson.dumps(old))
    book = EntityLedger(state, "conversations")
    assert book.get("c1") == old["records"]["c1"] and list(book.owed()) == [("c2", {"detail": "v2"})]
    book.see("c1", "v1", "2026-11-30", group="acc_1")
    assert state["records"]["c1"] == "v1|2026-11-30|acc_1"
    # and what is stored survives dlt's JSON round trip unchanged
    assert orjson.loads(orjson.dumps(state)) == state


def test_parts_done_for_the_current_version_are_the_fourth_field_and_a_new_version_owes_them_again():
    state: dict = {}
    book = EntityLedger(state, "conversations")
    book.see("c1", "v1", "2026-11-30", parts={"detail": "v1", "notes": "v1"})
    book.settle("c1", "detail", "v1")
    assert isinstance(state["records"]["c1"], dict)  # still owes its notes
    book.settle("c1", "notes", "v1")
    assert state["records"]["c1"] == "v1|2026-11-30||detail,notes"
    assert book.get("c1") == {"version": "v1", "day": "2026-11-30", "done": {"detail": "v1", "notes": "v1"}}
    book.see("c1", "v1", "2026-11-30", parts={"detail": "v1", "notes": "v1"})  # listed again, unchanged
    assert not list(book.owed()) and state["records"]["c1"] == "v1|2026-11-30||detail,notes"
    book.see("c1", "v2", "2026-11-30", parts={"detail": "v2", "notes": "v2"})  # changed: owed again
    assert list(book.owed()) == [("c1", {"detail": "v2", "notes": "v2"})]
    assert book.get("c1")["done"] == {"detail": "v1", "notes": "v1"}  # what was fetched, for v1


def test_parts_done_for_another_version_or_with_digests_stay_a_dict():
    for entry in ({"version": "v2", "done": {"detail": "v1"}},  # a part fetched for its own version
                  {"version": "v1", "done": {"detail": "v1"}, "digests": {"detail": "abc"}},
                  {"version": "v1", "done": {"a,b": "v1"}}, {"version": "v1", "done": {}}):
        assert compact(entry) is entry and expand(compact(entry)) == entry
    for entry in ({"version": "v1", "done": {"detail": "v1"}},
                  {"version": "v1", "day": "2026-11-30", "group": "g", "done": {"a": "v1", "b": "v1"}}):
        assert isinstance(compact(entry), str) and expand(compact(entry)) == entry
        assert orjson.loads(orjson.dumps(compact(entry))) == compact(entry)


def test_three_field_strings_written_before_parts_were_compacted_read_as_before():
    state = {"records": {"c1": "v1|2026-11-30|acc_1", "c2": {"version": "v2", "done": {"detail": "v2"}}}}
    book = EntityLedger(state, "conversations")
    assert book.get("c1") == {"version": "v1", "day": "2026-11-30", "group": "acc_1"}
    assert book.get("c2") == {"version": "v2", "done": {"detail": "v2"}}
    book.see("c2", "v2", None, parts={"detail": "v2"})  # touched: compacted, nothing owed
    assert state["records"]["c2"] == "v2|||detail" and not list(book.owed())


def test_records_are_packed_as_one_text_and_read_on_by_the_same_ledger_objects():
    source_state: dict = {}
    ledger = Ledger(source_state)
    conversations, users = ledger.entity("conversations"), ledger.entity("users")
    conversations.see("c1", "v1", "2026-11-30", group="acc_1")
    conversations.see("c2", "v2", None, parts={"detail": "v2"})
    users.see("u1", "v1", None)
    pack_records(source_state, keep=["users"])  # the users' feed still runs: left as they are
    books = source_state["ledger"]
    assert "records" not in books["conversations"] and isinstance(books["conversations"][PACKED_KEY], str)
    assert books["users"]["records"] == {"u1": "v1||"} and PACKED_KEY not in books["users"]
    assert records_of(books["conversations"]) == {"c1": "v1|2026-11-30|acc_1",
                                                  "c2": {"version": "v2", "owed": {"detail": "v2"}}}
    # a ledger object made before the pack reads and writes on: unpacked once, on first use
    assert conversations.get("c1") == {"version": "v1", "day": "2026-11-30", "group": "acc_1"}
    assert PACKED_KEY not in books["conversations"]
    conversations.settle("c2", "detail", "v2")
    assert not list(conversations.owed()) and len(conversations) == 2
    pack_records(source_state)
    assert all(set(b) & {"records", PACKED_KEY} == {PACKED_KEY} for n, b in books.items() if n != MARKS_KEY)


def test_a_run_leaves_the_records_packed_and_a_new_worker_restores_and_reads_them(start_sim, tmp_path):
    sim = start_sim(MeetricSimulator, accounts=2, conversations=24, users=8, span_days=14, seed=7,
                    rate_limit=None)
    pipeline = make_pipeline(tmp_path, "meetric")
    load(pipeline, sim)
    books = {n: b for n, b in pipeline.state["sources"]["meetric"]["ledger"].items() if n != MARKS_KEY}
    assert {"conversations", "insights", "action_items", "users"} <= set(books)
    assert not [n for n, b in books.items() if "records" in b]  # as dlt stores the state: one text each
    assert len(records_of(books["conversations"])) == 48 and len(records_of(books["users"])) == 16
    # a fresh working folder: dlt restores the state from the destination, and the run that
    # follows knows every record (loads nothing, makes no per-item call)
    fresh = dlt.pipeline(pipeline_name=pipeline.pipeline_name, destination=pipeline.destination,
                         dataset_name=pipeline.dataset_name, pipelines_dir=str(tmp_path / "fresh"))
    sim.clear_log()
    counts, _ = load(fresh, sim)
    assert counts == {}
    assert not [r.path for r in sim.log if "/managers" in r.path]
    restored = fresh.state["sources"]["meetric"]["ledger"]
    assert records_of(restored["conversations"]) == records_of(books["conversations"])


def test_a_plain_record_listed_is_written_as_the_general_path_writes_it():
    """`see` writes a plain record's string directly; a `forget` of a part nobody has takes
    the general path (expand, change, compact), which must come to the same entry."""
    starts = [None, "v0|2026-11-29|acc_0", "v0||", "v0|2026-11-29|acc_0|detail",
              {"version": "v0", "owed": {"detail": "v0"}}, {"version": "v0", "waiting": True}]
    texts = [None, "", "2026-11-30", f"a{COMPACT_SEP}b"]
    for start in starts:
        for version in ("v1", "", f"v{COMPACT_SEP}1"):
            for day in texts:
                for group in texts:
                    books = []
                    for forget in ((), ("not-a-part",)):
                        state = {"records": {} if start is None else {"c1": dict(start) if isinstance(start, dict)
                                                                      else start}}
                        EntityLedger(state, "conversations").see("c1", version, day, group=group, forget=forget)
                        books.append(state["records"])
                    assert books[0] == books[1], (start, version, day, group)
