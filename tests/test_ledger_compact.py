"""The ledger keeps a record that owes and waits for nothing as one string ("version|day|group"),
in memory and in dlt's state, and every reader and writer sees the same entry either way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from sources._common.ledger import COMPACT_SEP, EntityLedger, compact, expand

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_plain_record_is_one_string_and_reads_back_as_its_fields():
    state: dict = {}
    book = EntityLedger(state, "conversations")
    book.see("c1", "v1", "2026-11-30", group="acc_1")
    book.see("c2", "v2", None)
    assert state["records"] == {"c1": "v1|2026-11-30|acc_1", "c2": "v2||"}
    assert book.get("c1") == {"version": "v1", "day": "2026-11-30", "group": "acc_1"}
    assert book.get("c2") == {"version": "v2"}
    assert dict(book.entries())["c1"] == book.get("c1") and book.newest_day() == "2026-11-30"
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
