"""A feed yields its next batch only once dlt has handed the last one to each of its tables
(`engine.handed_over_one_at_a_time`), so a checkpoint's batches do not pile up in dlt's forks
and memory stays flat in the checkpoint's size."""

from __future__ import annotations

import weakref

import dlt
import pytest

import sources._common.engine as engine
from sources._common.engine import FetchedBatch, Handover, handed_over_one_at_a_time

BATCHES = 40
TABLES = 6


def feed_source(most_alive: list[int], *, handover: bool = True, tables_taking: int = TABLES):
    """A feed of `BATCHES` batches forked to `TABLES` transformers, as `chained_resources`
    builds it (`tables_taking` of them tell the handover); `most_alive` records how many
    batches were alive at once."""
    alive = [0]
    turn = Handover()

    def gone() -> None:
        alive[0] -= 1

    def made(i: int) -> FetchedBatch:
        batch = FetchedBatch(items=[], entity=str(i))
        alive[0] += 1
        weakref.finalize(batch, gone)
        most_alive[0] = max(most_alive[0], alive[0])
        return batch

    def batches():
        for i in range(BATCHES):
            yield made(i)  # not bound to a name here: like the engine's feed

    def feed_items():
        if handover:
            yield from handed_over_one_at_a_time(batches(), turn, lambda: TABLES)
        else:
            yield from batches()

    feed = dlt.resource(feed_items, name="feed", selected=False)

    def table(n: int):
        def rows_of(batch):
            try:
                yield [{"batch": int(batch.entity), "table": n}]
            finally:
                if n < tables_taking:
                    turn.done_with(batch)

        return dlt.transformer(rows_of, data_from=feed, name=f"t{n}")

    @dlt.source(name="handover")
    def source():
        return [feed, *(table(n) for n in range(TABLES))]

    return source()


def rows_by_table(src) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for item in src:
        out.setdefault(item["table"], []).append(item["batch"])
    return {table: sorted(batches) for table, batches in out.items()}  # dlt may reorder them


EVERY_BATCH_ONCE = {n: list(range(BATCHES)) for n in range(TABLES)}


@pytest.mark.parametrize("mode", ["round_robin", "fifo"])
def test_a_feed_waits_until_its_batch_reached_every_table(mode, monkeypatch):
    monkeypatch.setenv("EXTRACT__NEXT_ITEM_MODE", mode)
    monkeypatch.setattr(engine, "handover_timeouts", 0)
    most_alive = [0]
    assert rows_by_table(feed_source(most_alive)) == EVERY_BATCH_ONCE
    assert most_alive[0] <= 2  # the one being handed over, and the next one being made
    assert engine.handover_timeouts == 0


def test_without_the_handover_dlts_round_robin_lets_the_batches_pile_up(monkeypatch):
    """The failure the handover is for, so that the test above can fail."""
    monkeypatch.setenv("EXTRACT__NEXT_ITEM_MODE", "round_robin")
    most_alive = [0]
    assert rows_by_table(feed_source(most_alive, handover=False)) == EVERY_BATCH_ONCE
    assert most_alive[0] > 2


def test_a_table_that_never_says_it_is_done_delays_the_feed_once_then_it_stops_waiting(monkeypatch):
    monkeypatch.setattr(engine, "HANDOVER_WAIT_SECONDS", 0.05)
    monkeypatch.setattr(engine, "HANDOVER_TURNS", 3)
    monkeypatch.setattr(engine, "handover_timeouts", 0)
    out = rows_by_table(feed_source([0], tables_taking=TABLES - 1))
    assert out == EVERY_BATCH_ONCE  # nothing lost, nothing twice
    assert engine.handover_timeouts == 1  # it waited for the first batch only
