"""The list-and-fetch engine, on a small API served over loopback: what every source gets.

The toy API has a paged list of items (each with a `tags` list, so the table has a child
table), a detail call per item, and a `notes` call that answers 404 until the vendor has
made the notes; and a list of groups, whose detail lists the items in the group. Items may
be hidden from the list while they still answer by id (a list that moved while it was
paged). Sources are built from `Entity`, `Listing` and `TableSpec` exactly as the real
ones are.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import pytest

from simulators.base import HttpError, Request, Simulator, route
from sources._common.auth import BearerAuth
from sources._common.engine import (
    Action,
    Engine,
    Entity,
    Listing,
    NotFound,
    Part,
    Ready,
    TableSpec,
    Work,
    action_for,
    chained_resources,
    entity_resources,
    tolerate,
)
from sources._common.errors import NotFoundError, QuotaExhausted, ScopeError
from sources._common.http import ApiClient, HttpSettings
from sources._common.ledger import Ledger
from sources._common.paginators import PageNumberPaginator
from sources._common.report import new_report
from sources._common.tables import MERGE as DEFAULT_MERGE
from sources._common.tables import deleted_at_column
from tests.utils import rows

TOKEN = "toy-secret-token"
MERGE: object = {"disposition": "merge", "strategy": "delete-insert"}


class ToySimulator(Simulator):
    name = "toy"

    def __init__(self, items: int = 12, **kw: Any) -> None:
        super().__init__(**kw)
        self.items: dict[str, dict] = {}
        self.hidden: set[str] = set()  # not listed, yet answering by id
        self.groups: dict[str, dict] = {}
        self.notes_ready: set[str] = set()
        self.forbid_notes = False
        self.forbid_notes_of: set[str] = set()  # items whose notes answer 403 (another account's)
        self.quota: int | None = None  # per-item calls allowed before 429 "quota"
        for i in range(items):
            self.add(i)

    def add(self, i: int, status: str = "done", group: str | None = None) -> dict:
        at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=i)
        item = {"id": f"it{i:03d}", "title": f"Item {i}", "status": status,
                "created_at": at.isoformat(), "updated_at": at.isoformat(),
                "tags": [f"t{i}", f"u{i}"], "meta": {"score": i / 10}}
        if group is not None:
            item["group_id"] = group
            self.groups.setdefault(group, {"id": group, "name": f"Group {group}"})
        self.items[item["id"]] = item
        self.notes_ready.add(item["id"])
        return item

    def touch(self, item_id: str, **changes: Any) -> None:
        item = self.items[item_id]
        item.update(changes)
        item["updated_at"] = (datetime.fromisoformat(item["updated_at"]) + timedelta(minutes=1)).isoformat()

    def source_config(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "token": TOKEN}

    def authenticate(self, request: Request) -> Any:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise HttpError(401, "bad token")
        return "user"

    def _spend(self) -> None:
        if self.quota is not None:
            if self.quota <= 0:
                raise HttpError(429, "Daily quota exceeded", headers={"Retry-After": "3600"})
            self.quota -= 1

    @route("GET", "/items")
    def list_items(self, request: Request) -> Any:
        page, size = int(request.query.get("page", 1)), int(request.query.get("size", 5))
        ordered = sorted((i for i in self.items.values() if i.get("id") not in self.hidden),
                         key=lambda i: i["created_at"], reverse=True)
        chunk = ordered[(page - 1) * size: page * size]
        pages = max(1, -(-len(ordered) // size))
        return {"items": chunk, "meta": {"total_pages": pages}}

    @route("GET", r"/items/(?P<id>[^/]+)")
    def detail(self, request: Request) -> Any:
        item = self.items.get(request.params["id"])
        if item is None:
            raise HttpError(404, "not found")
        self._spend()
        return {**item, "body": f"the text of {item['id']}"}

    @route("GET", "/groups")
    def list_groups(self, request: Request) -> Any:
        return {"groups": sorted(self.groups.values(), key=lambda g: g["id"])}

    @route("GET", r"/groups/(?P<id>[^/]+)")
    def group(self, request: Request) -> Any:
        group = self.groups.get(request.params["id"])
        if group is None:
            raise HttpError(404, "not found")
        return {**group, "items": sorted(i["id"] for i in self.items.values() if i.get("group_id") == group["id"])}

    @route("GET", r"/items/(?P<id>[^/]+)/notes")
    def notes(self, request: Request) -> Any:
        item_id = request.params["id"]
        if self.forbid_notes or item_id in self.forbid_notes_of:
            raise HttpError(403, "Token does not have the 'notes' scope")
        if item_id not in self.items or item_id not in self.notes_ready:
            raise HttpError(404, "not found")
        self._spend()
        return {"item_id": item_id, "notes": [f"note on {item_id}"]}


class FullList(Listing):
    """Every page, every run: each run is a sweep. With `hide`, the ids it leaves out (and
    no sweep, unless `sweep` says otherwise); with `reach`, the only groups whose owed parts
    it fetches."""

    def __init__(self, client: ApiClient, hide: tuple = (), reach: tuple | None = None,
                 sweep: bool | None = None) -> None:
        self.client, self.hide, self.reach = client, set(hide), reach
        self.sweep = not hide if sweep is None else sweep

    def pages(self) -> Iterator[list]:
        paginator = PageNumberPaginator(page_size=5, size_param="size", total_pages_path="meta.total_pages")
        for page in self.client.paginate("items", paginator=paginator, items_path="items"):
            yield [i for i in page.items if i.get("id") not in self.hide]

    def reaches(self, record_id: str, entry: dict) -> bool:
        return self.reach is None or entry.get("group") in self.reach


def classify(answer: Any) -> Any:
    if answer.status == 429 and "quota" in str(answer.body).lower():
        return QuotaExhausted("quota spent", status=429, url=answer.url)
    if answer.status == 403:
        return ScopeError("forbidden", scope="notes", status=403, url=answer.url)
    return None


def toy_client(base_url: str, token: str, max_requests: int | None = None) -> tuple[ApiClient, Any]:
    report = new_report("toy")
    return ApiClient(base_url, BearerAuth(token), report,
                     HttpSettings(max_requests=max_requests, concurrency=3, max_retries=1,
                                  backoff_initial_seconds=0.01, backoff_max_seconds=0.02),
                     classify_error=classify), report


def item_entity(client: ApiClient, *, stable_notes: bool = False, rearm_notes: bool = False,
                digest_notes: bool = False, retry_now: bool = False, lookup: bool = False,
                **options: Any) -> Entity:
    """Items: the detail call answers the item itself plus its body, so it may be the lookup."""
    return Entity(
        name="items", table="items",
        key=lambda i: str(i["id"]) if i.get("id") else None,
        version=lambda i: str(i["updated_at"]),
        day=lambda i: str(i["created_at"])[:10],
        group=lambda i: f"g{int(i['id'][2:]) % 2}",
        wants=lambda i: ((("detail", "notes") if i.get("status") == "done" else ()), i.get("status") != "done"),
        parts=(
            Part("detail", ("item_bodies",), fetch=lambda w: client.get(f"items/{w.record_id}").body,
                 not_found=NotFound.DELETED),
            Part("notes", ("notes",), fetch=lambda w: client.get(f"items/{w.record_id}/notes").body,
                 not_found=NotFound.NOT_READY,
                 judge=lambda w, body: Ready.READY if body.get("notes") else Ready.NOT_READY,
                 version=(lambda i: "v1") if stable_notes else None, rearm=rearm_notes,
                 digest=(lambda body: str(body["notes"])) if digest_notes else None,
                 retry_first=timedelta(0) if retry_now else timedelta(minutes=30)),
        ),
        lookup="detail" if lookup else None, **options,
    )


def item_tables() -> list[TableSpec]:
    return [
        TableSpec("items", hints={"primary_key": "id", "write_disposition": MERGE,
                                  "columns": deleted_at_column()}),
        TableSpec("item_bodies", part="detail",
                  shape=lambda f: [{"item_id": f.work.record_id, "body": f.bodies["detail"]["body"]}],
                  hints={"primary_key": "item_id", "write_disposition": MERGE}),
        TableSpec("notes", part="notes",
                  shape=lambda f: [{"item_id": f.work.record_id, "note": n, "grp": f.work.group}
                                   for n in f.bodies["notes"]["notes"]],
                  hints={"primary_key": "item_id", "write_disposition": MERGE}),
    ]


@dlt.source(name="toy")
def toy(base_url: str, token: str, max_requests: int | None = None, *, hide: tuple = (),
        reach: tuple | None = None, sweep: bool | None = None, **options: Any) -> Any:
    client, report = toy_client(base_url, token, max_requests)
    engine = Engine(item_entity(client, **options), lambda book: FullList(client, hide, reach, sweep),
                    client=client, report=report, now=lambda: datetime.now(UTC))
    return entity_resources(engine, item_tables(), report)


@pytest.fixture
def sim(start_sim) -> ToySimulator:
    return start_sim(ToySimulator)


@pytest.fixture
def pipeline(tmp_path) -> dlt.Pipeline:
    return dlt.pipeline("engine_toy", destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
                        dataset_name="toy", pipelines_dir=str(tmp_path / "pipelines"))


def loaded(pipeline: dlt.Pipeline) -> dict[str, int]:
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return {t: n for t, n in counts.items() if not t.startswith("_dlt")}


def tags(pipeline: dlt.Pipeline) -> list[tuple]:
    """(item id, list index, tag) of the child table, joined to its parent rows."""
    with pipeline.sql_client() as client:
        items, kids = client.make_qualified_table_name("items"), client.make_qualified_table_name("items__tags")
        with client.execute_query(f"SELECT i.id, t._dlt_list_idx, t.value FROM {kids} t "
                                  f"JOIN {items} i ON i._dlt_id = t._dlt_parent_id ORDER BY 1, 2") as cur:
            return [tuple(r) for r in cur.fetchall()]


def per_item(sim: ToySimulator) -> list:
    return sim.requests(pattern=r"^/items/")


def test_error_actions_are_one_table():
    assert action_for(QuotaExhausted("q")) is Action.STOP
    assert action_for(ScopeError("s")) is Action.SKIP
    assert action_for(TypeError("t")) is Action.BAD_RECORD
    assert action_for(RuntimeError("a bug")) is None  # propagates


def test_full_load_then_a_second_run_makes_only_list_requests(sim, pipeline):
    pipeline.run(toy(**sim.source_config()))
    assert loaded(pipeline) == {"items": 12, "item_bodies": 12, "notes": 12, "items__tags": 24}
    stored = {r["id"]: r for r in rows(pipeline, "items")}
    assert set(stored) == set(sim.items) and stored["it003"]["meta__score"] == 0.3
    sim.clear_log()
    pipeline.run(toy(**sim.source_config()))
    assert loaded(pipeline) == {}
    assert per_item(sim) == [] and len(sim.requests(pattern="^/items$")) == 3


def test_a_record_the_vendor_finishes_later_gets_its_parts_on_the_next_run(sim, pipeline):
    sim.add(20, status="processing")
    pipeline.run(toy(**sim.source_config()))
    assert "it020" not in {r["item_id"] for r in rows(pipeline, "item_bodies")}
    sim.clear_log()
    sim.touch("it020", status="done")
    pipeline.run(toy(**sim.source_config()))
    assert {r.path for r in per_item(sim)} == {"/items/it020", "/items/it020/notes"}
    assert loaded(pipeline) == {"items": 1, "items__tags": 2, "item_bodies": 1, "notes": 1}


def test_a_part_not_ready_is_owed_with_back_off_not_fetched_again_at_once(sim, pipeline):
    sim.notes_ready.discard("it005")
    pipeline.run(toy(**sim.source_config()))
    book = Ledger(pipeline.state["sources"]["toy"]).entity("items").get("it005")
    assert set(book["owed"]) == {"notes"} and book["tries"] == 1 and "check_at" in book
    sim.clear_log()
    pipeline.run(toy(**sim.source_config()))
    assert per_item(sim) == []  # backing off: not due yet


def test_deletions_are_marked_in_a_plain_pipeline_run_with_columns_and_child_rows_intact(sim, pipeline):
    pipeline.run(toy(**sim.source_config()))
    before = {r["id"]: r for r in rows(pipeline, "items")}
    tags_before = tags(pipeline)
    del sim.items["it004"], sim.items["it007"]
    pipeline.run(toy(**sim.source_config()))
    after = {r["id"]: r for r in rows(pipeline, "items")}
    assert {i for i, r in after.items() if r["deleted_at"] is not None} == {"it004", "it007"}
    for gone in ("it004", "it007"):
        same = {k: v for k, v in after[gone].items() if k != "deleted_at"}
        assert same == {k: v for k, v in before[gone].items() if k != "deleted_at"}
    assert tags(pipeline) == tags_before
    assert {r["item_id"] for r in rows(pipeline, "item_bodies")} >= {"it004", "it007"}
    # marked once: a third run loads nothing
    pipeline.run(toy(**sim.source_config()))
    assert loaded(pipeline) == {}


def test_a_record_that_comes_back_is_live_again(sim, pipeline):
    pipeline.run(toy(**sim.source_config()))
    saved = sim.items.pop("it002")
    pipeline.run(toy(**sim.source_config()))
    sim.items["it002"] = saved
    pipeline.run(toy(**sim.source_config()))
    assert {r["id"]: r["deleted_at"] for r in rows(pipeline, "items")}["it002"] is None


def test_a_sweep_that_lists_nothing_refuses_to_mark(sim, pipeline):
    pipeline.run(toy(**sim.source_config()))
    sim.items.clear()
    source = toy(**sim.source_config())
    pipeline.run(source)
    from sources._common.report import get_report
    assert any("refusing to mark" in w for w in get_report("toy").warnings)
    assert all(r["deleted_at"] is None for r in rows(pipeline, "items"))


def test_a_selected_table_loads_alone_and_costs_only_its_own_calls(sim, pipeline):
    pipeline.run(toy(**sim.source_config()).with_resources("notes"))
    assert loaded(pipeline) == {"notes": 12}
    assert {r.path.rsplit("/", 1)[-1] for r in per_item(sim)} == {"notes"}
    sim.clear_log()
    pipeline.run(toy(**sim.source_config()))  # everything now: notes are not fetched again
    assert loaded(pipeline) == {"items": 12, "items__tags": 24, "item_bodies": 12}
    assert not [r for r in per_item(sim) if r.path.endswith("/notes")]


def test_a_spent_budget_during_the_listing_stops_cleanly_and_the_next_run_converges(sim, pipeline, tmp_path):
    pipeline.run(toy(**sim.source_config(), max_requests=2))  # two list pages of three
    assert "items" in loaded(pipeline)
    pipeline.run(toy(**sim.source_config()))
    clean = dlt.pipeline("engine_clean", destination=dlt.destinations.duckdb(str(tmp_path / "c.duckdb")),
                         dataset_name="toy", pipelines_dir=str(tmp_path / "pc"))
    clean.run(toy(**sim.source_config()))
    for table, key in (("items", "id"), ("item_bodies", "item_id"), ("notes", "item_id")):
        assert sorted(rows(pipeline, table), key=lambda r: r[key]) == sorted(rows(clean, table), key=lambda r: r[key])


def test_a_spent_quota_stops_per_item_calls_at_the_first_refusal(sim, pipeline):
    sim.quota = 7
    pipeline.run(toy(**sim.source_config()))
    refused = [r for r in per_item(sim) if r.status == 429]
    assert 1 <= len(refused) <= 3  # the ones in flight when the first refusal came back
    assert loaded(pipeline)["items"] == 12
    sim.quota = None
    sim.clear_log()
    pipeline.run(toy(**sim.source_config()))
    assert len(rows(pipeline, "item_bodies")) == 12 and len(rows(pipeline, "notes")) == 12
    fetched_twice = [r.path for r in per_item(sim) if r.status == 200]
    assert len(fetched_twice) == 24 - 7


def test_a_missing_scope_skips_its_table_and_loads_the_rest(sim, pipeline):
    sim.forbid_notes = True
    pipeline.run(toy(**sim.source_config()))
    from sources._common.report import get_report
    assert "notes" in get_report("toy").skipped
    assert len(rows(pipeline, "item_bodies")) == 12
    assert len([r for r in per_item(sim) if r.path.endswith("/notes")]) <= 3  # stops asking


def test_a_record_without_an_id_is_named_and_the_rest_loads(sim, pipeline):
    sim.items["zz"] = {"title": "no id", "status": "done", "created_at": "x", "updated_at": "y"}
    pipeline.run(toy(**sim.source_config()))
    from sources._common.report import get_report
    bad = get_report("toy").bad_records
    assert [b for b in bad if b.table == "items" and not b.loaded and "no id" in b.record_id]
    assert len(rows(pipeline, "items")) == 12


# ---------------------------------------------------------------------- groups (accounts)
def group_of(item: dict) -> str:
    return "odd" if int(item["id"][2:]) % 2 else "even"


class GroupedList(FullList):
    """The items of two accounts, each read with its own credential; `refused` lists the
    groups whose credential may not list them."""

    def __init__(self, client: ApiClient, refused: set[str]) -> None:
        super().__init__(client)
        self.refused = refused

    def by_group(self) -> Iterator[tuple[str | None, Iterator[list]]]:
        for group in ("even", "odd"):
            yield group, self._pages_of(group)

    def _pages_of(self, group: str) -> Iterator[list]:
        if group in self.refused:
            raise ScopeError(f"account '{group}': insufficient permissions")
        for page in self.pages():
            yield [i for i in page if group_of(i) == group]


@dlt.source(name="toy")
def grouped_toy(base_url: str, token: str, refused: tuple[str, ...] = (), arrow: bool = False) -> Any:
    """The toy API as two accounts (even and odd ids); `arrow`: items loaded as Arrow pages."""
    import pyarrow as pa

    report = new_report("toy")
    client = ApiClient(base_url, BearerAuth(token), report,
                       HttpSettings(concurrency=3, max_retries=1, backoff_initial_seconds=0.01,
                                    backoff_max_seconds=0.02), classify_error=classify)
    entity = Entity(
        name="items", table="items", key=lambda i: str(i["id"]), version=lambda i: str(i["updated_at"]),
        group=group_of, wants=lambda i: (("notes",), False), scopes_per_group=True,
        parts=(Part("notes", ("notes",), fetch=lambda w: client.get(f"items/{w.record_id}/notes").body),),
    )
    engine = Engine(entity, lambda book: GroupedList(client, set(refused)), client=client, report=report,
                    now=lambda: datetime.now(UTC))

    def page(rows: list[dict]) -> Any:
        return pa.table({"id": [r["id"] for r in rows], "title": [r["title"] for r in rows],
                         "deleted_at": pa.array([r.get("deleted_at") for r in rows], pa.timestamp("us", "UTC"))})

    return entity_resources(engine, [
        TableSpec("items", finish=page if arrow else None, finish_marked=page if arrow else None,
                  hints={"primary_key": "id", "write_disposition": DEFAULT_MERGE, "columns": deleted_at_column()}),
        TableSpec("notes", part="notes", hints={"primary_key": "item_id", "write_disposition": DEFAULT_MERGE},
                  shape=lambda f: [{"item_id": f.work.record_id, "note": n} for n in f.bodies["notes"]["notes"]]),
    ], report)


def test_a_group_whose_credential_may_not_list_is_skipped_and_the_others_load_and_sweep(sim, pipeline):
    from sources._common.report import get_report

    pipeline.run(grouped_toy(**sim.source_config()))
    assert loaded(pipeline) == {"items": 12, "items__tags": 24, "notes": 12}
    del sim.items["it004"], sim.items["it007"]  # one of each account
    pipeline.run(grouped_toy(**sim.source_config(), refused=("even",)))
    report = get_report("toy")
    assert "even" in report.skipped["items"] and "insufficient permissions" in report.skipped["items"]
    assert not [w for w in report.warnings if "refusing" in w]  # the refused group is not "empty"
    marked = {r["id"] for r in rows(pipeline, "items") if r["deleted_at"] is not None}
    assert marked == {"it007"}  # the odd account was read whole; the even one is not judged
    pipeline.run(grouped_toy(**sim.source_config()))
    assert {r["id"] for r in rows(pipeline, "items") if r["deleted_at"] is not None} == {"it004", "it007"}


def test_a_part_refused_for_one_group_is_still_fetched_for_the_others(sim, pipeline):
    from sources._common.report import get_report

    sim.forbid_notes_of = {i for i in sim.items if int(i[2:]) % 2}  # the odd account's key
    pipeline.run(grouped_toy(**sim.source_config()))
    assert "notes" in get_report("toy").skipped
    assert {r["item_id"] for r in rows(pipeline, "notes")} == {i for i in sim.items if not int(i[2:]) % 2}
    refused = [r for r in per_item(sim) if r.status == 403]
    assert 1 <= len(refused) <= 3  # the odd ones in flight when the first refusal came back


def test_marked_rows_of_an_arrow_table_are_yielded_as_arrow_too(sim, pipeline):
    pipeline.run(grouped_toy(**sim.source_config(), arrow=True))
    del sim.items["it003"]
    pipeline.run(grouped_toy(**sim.source_config(), arrow=True))  # dict rows would add `_dlt_id`: a failed load
    stored = {r["id"]: r for r in rows(pipeline, "items", columns="id, title, deleted_at")}
    assert stored["it003"]["deleted_at"] is not None and stored["it003"]["title"] == "Item 3"
    assert [i for i, r in stored.items() if r["deleted_at"] is not None] == ["it003"]
    assert "_dlt_id" not in pipeline.default_schema.get_table_columns("items")


def test_a_listing_with_nothing_to_fetch_hands_each_page_over_as_it_is_read(sim, pipeline):
    events: list[str] = []

    class Traced(FullList):
        def pages(self) -> Iterator[list]:
            for page in super().pages():
                events.append("page")
                yield page

    @dlt.source(name="toy")
    def traced(base_url: str, token: str) -> Any:
        report = new_report("toy")
        client = ApiClient(base_url, BearerAuth(token), report, HttpSettings(concurrency=3))
        entity = Entity(name="items", table="items", key=lambda i: str(i["id"]),
                        version=lambda i: str(i["updated_at"]))
        engine = Engine(entity, lambda book: Traced(client), client=client, report=report,
                        now=lambda: datetime.now(UTC))

        def feed() -> Iterator[Any]:
            for batch in engine.feed():
                events.append(type(batch).__name__)
                yield batch

        return dlt.resource(feed, name="items")  # the table is selected: its rows are listed

    pipeline.extract(traced(**sim.source_config()))
    assert events == ["page", "ListedRows"] * 3


def test_deletions_are_marked_on_delta_tables_that_were_merged_into_before(sim, tmp_path):
    """After an upsert, a Delta table's files hold `string_view` columns: reading rows back
    by key must not trip over them (the marks would never land)."""
    from tests.destinations import make_warehouse

    lake = make_warehouse("filesystem", tmp_path, None)
    pipeline = lake.pipeline("toy_delta")
    lake.run(pipeline, grouped_toy(**sim.source_config()))
    sim.touch("it001", title="Renamed")
    lake.run(pipeline, grouped_toy(**sim.source_config()))  # merged into: the table's second version
    del sim.items["it004"]
    lake.run(pipeline, grouped_toy(**sim.source_config()))
    stored = {r["id"]: r for r in lake.rows(pipeline, "items")}
    assert [i for i, r in stored.items() if r["deleted_at"] is not None] == ["it004"]
    assert stored["it004"]["title"] == "Item 4" and stored["it001"]["title"] == "Renamed"


def test_tolerate_lets_only_the_named_actions_pass(sim):
    report = new_report("toy-tolerate")
    with ApiClient(sim.base_url, BearerAuth(TOKEN), report, HttpSettings(max_retries=0)) as client:
        with tolerate(Action.NOT_FOUND) as missing:
            client.get("items/nope")
        assert missing.action is Action.NOT_FOUND and isinstance(missing.error, NotFoundError)
        with tolerate(Action.NOT_FOUND) as fine:
            body = client.get("items/it001").body
        assert fine.error is None and fine.action is None and body["id"] == "it001"
        sim.forbid_notes = True
        with pytest.raises(ScopeError), tolerate(Action.NOT_FOUND):
            client.get("items/it001/notes")
    with pytest.raises(RuntimeError), tolerate(*Action):  # a bug is never tolerated
        raise RuntimeError("a bug")


def test_a_part_whose_body_did_not_change_loads_nothing(sim, pipeline):
    pipeline.run(toy(**sim.source_config(), digest_notes=True))
    sim.touch("it003", title="Renamed")
    sim.clear_log()
    pipeline.run(toy(**sim.source_config(), digest_notes=True))
    assert {r.path for r in per_item(sim)} == {"/items/it003", "/items/it003/notes"}
    assert loaded(pipeline) == {"items": 1, "items__tags": 2, "item_bodies": 1}  # the notes are the same
    sim.items["it003"]["title"] = "Renamed again"
    sim.touch("it003")
    pipeline.run(toy(**sim.source_config()))  # without a digest the same notes load again
    assert loaded(pipeline) == {"items": 1, "items__tags": 2, "item_bodies": 1, "notes": 1}


@pytest.mark.parametrize("rearm", [True, False])
def test_a_rearmed_part_is_fetched_again_once_its_stage_ran_again(sim, pipeline, rearm):
    config = {**sim.source_config(), "stable_notes": True, "rearm_notes": rearm}
    pipeline.run(toy(**config))
    sim.touch("it003", status="processing")  # the vendor runs it again: no notes wanted now
    pipeline.run(toy(**config))
    sim.touch("it003", status="done")
    sim.clear_log()
    pipeline.run(toy(**config))
    notes = [r.path for r in per_item(sim) if r.path.endswith("/notes")]
    assert notes == (["/items/it003/notes"] if rearm else [])  # the same part version ("v1") each time


def test_owed_parts_are_fetched_only_where_the_listing_reaches_with_their_group(sim, pipeline):
    sim.notes_ready -= {"it004", "it005"}
    pipeline.run(toy(**sim.source_config(), retry_now=True))
    sim.notes_ready |= {"it004", "it005"}
    sim.clear_log()
    # both are owed from the last run and not listed now: the backlog, for group g0 only
    pipeline.run(toy(**sim.source_config(), retry_now=True, hide=("it004", "it005"), reach=("g0",)))
    assert [r.path for r in per_item(sim)] == ["/items/it004/notes"]
    assert [(r["item_id"], r["grp"]) for r in rows(pipeline, "notes") if r["item_id"] in ("it004", "it005")] == \
        [("it004", "g0")]
    book = Ledger(pipeline.state["sources"]["toy"]).entity("items")
    assert set(book.get("it005")["owed"]) == {"notes"}  # still owed, for a run that reaches it


# ---------------------------------------------------------------------- ordered work, back-off, refusals
@dlt.source(name="toy_parts")
def toy_parts(base_url: str, token: str, make_parts: Any, ordered: bool = False, concurrency: int = 3) -> Any:
    """The toy list with the parts `make_parts(client)` gives (for the engine's options)."""
    report = new_report("toy_parts")
    client = ApiClient(base_url, BearerAuth(token), report,
                       HttpSettings(concurrency=concurrency, max_retries=1, backoff_initial_seconds=0.01,
                                    backoff_max_seconds=0.02), classify_error=classify)
    parts = make_parts(client)
    entity = Entity(name="items", table="items", key=lambda i: str(i["id"]), version=lambda i: str(i["updated_at"]),
                    day=lambda i: str(i["created_at"]), wants=lambda i: ([p.name for p in parts], False),
                    parts=parts, ordered=ordered)
    engine = Engine(entity, lambda book: FullList(client), client=client, report=report,
                    now=lambda: datetime.now(UTC))
    specs = [TableSpec("items", hints={"primary_key": "id", "write_disposition": MERGE,
                                       "columns": deleted_at_column()})]
    specs += [TableSpec(t, part=p.name, shape=lambda f: [{"item_id": f.work.record_id}],
                        hints={"primary_key": "item_id", "write_disposition": MERGE}) for p in parts for t in p.tables]
    return entity_resources(engine, specs, report)


def _get(client: ApiClient, suffix: str = "") -> Any:
    return lambda w: client.get(f"items/{w.record_id}{suffix}").body


def test_ordered_work_fetches_each_priority_in_its_turn_newest_first(sim, pipeline):
    parts = lambda c: (Part("detail", ("item_bodies",), fetch=_get(c)),  # noqa: E731
                       Part("notes", ("notes",), fetch=_get(c, "/notes"), priority=1))
    pipeline.run(toy_parts(**sim.source_config(), make_parts=parts, ordered=True, concurrency=1))
    paths = [r.path for r in per_item(sim)]
    newest_first = sorted(sim.items, reverse=True)
    assert paths == [f"/items/{i}" for i in newest_first] + [f"/items/{i}/notes" for i in newest_first]
    assert loaded(pipeline) == {"items": 12, "items__tags": 24, "item_bodies": 12, "notes": 12}


def test_a_record_with_two_parts_not_ready_is_backed_off_once(sim, pipeline):
    sim.notes_ready.discard("it005")
    parts = lambda c: tuple(Part(n, (n,), fetch=_get(c, "/notes"), not_found=NotFound.NOT_READY,  # noqa: E731
                                 retry_first=timedelta(hours=1)) for n in ("notes", "notes_again"))
    before = datetime.now(UTC)
    pipeline.run(toy_parts(**sim.source_config(), make_parts=parts))
    book = Ledger(pipeline.state["sources"]["toy_parts"]).entity("items").get("it005")
    assert set(book["owed"]) == {"notes", "notes_again"} and book["tries"] == 1
    wait = datetime.fromisoformat(book["check_at"].replace("Z", "+00:00")) - before
    assert timedelta(minutes=59) < wait < timedelta(minutes=61)  # one hour, not two


def test_a_refused_call_gives_back_what_its_fetch_reserved(sim, pipeline):
    sim.quota = 4
    given_back: list[str] = []
    parts = lambda c: (Part("detail", ("item_bodies",), fetch=_get(c),  # noqa: E731
                            refused=lambda w: given_back.append(w.record_id)),)
    pipeline.run(toy_parts(**sim.source_config(), make_parts=parts))
    refused = [r.path.rsplit("/", 1)[1] for r in per_item(sim) if r.status == 429]
    assert refused and sorted(given_back) == sorted(refused)
    assert len(rows(pipeline, "item_bodies")) == 4


def test_a_listing_refused_for_a_scope_is_skipped_not_reported_as_cut_short(sim, pipeline):
    class Forbidden(Listing):
        def pages(self) -> Iterator[list]:
            raise ScopeError("this plan may not list items")
            yield []  # pragma: no cover

    report = new_report("toy_forbidden")
    client = ApiClient(sim.base_url, BearerAuth(TOKEN), report, HttpSettings())
    entity = Entity(name="items", table="items", key=lambda i: str(i["id"]), version=lambda i: "1")
    engine = Engine(entity, lambda book: Forbidden(), client=client, report=report, now=lambda: datetime.now(UTC))
    source = dlt.source(name="toy_forbidden")(lambda: entity_resources(engine, [TableSpec("items")], report))
    pipeline.run(source())
    assert "this plan may not list items" in report.skipped["items"]
    assert "items" not in report.waiting and report.warnings == []


def test_a_record_found_deleted_in_the_run_that_listed_it_is_marked(sim, pipeline):
    gone = "it020"  # new in the second run: listed, then deleted before its detail call
    parts = lambda c: (Part("detail", ("item_bodies",), not_found=NotFound.DELETED,  # noqa: E731
                            fetch=lambda w: c.get(f"items/{'nope' if w.record_id == gone else w.record_id}").body),)
    pipeline.run(toy_parts(**sim.source_config(), make_parts=parts))
    sim.add(20)
    pipeline.run(toy_parts(**sim.source_config(), make_parts=parts))
    assert gone in {r["id"] for r in rows(pipeline, "items")}  # its row loaded in that run
    del sim.items[gone]
    pipeline.run(toy_parts(**sim.source_config(), make_parts=parts))
    marked = {r["id"] for r in rows(pipeline, "items") if r["deleted_at"] is not None}
    assert marked == {gone}


# ---------------------------------------------------------------------- lookups by id
def test_a_lookup_confirms_a_deletion_by_its_404_and_books_what_the_list_only_missed(sim, pipeline):
    pipeline.run(toy(**sim.source_config(), lookup=True))
    sim.hidden.add("it003")  # the list moved while it was paged: not listed, yet there
    sim.touch("it003", title="Renamed while unlisted")
    del sim.items["it005"]
    sim.clear_log()
    pipeline.run(toy(**sim.source_config(), lookup=True))
    after = {r["id"]: r for r in rows(pipeline, "items")}
    assert {i for i, r in after.items() if r["deleted_at"] is not None} == {"it005"}
    assert after["it003"]["title"] == "Renamed while unlisted"  # booked from its own answer
    assert sorted(r.path for r in per_item(sim)) == ["/items/it003", "/items/it005"]
    book = Ledger(pipeline.state["sources"]["toy"]).entity("items")
    assert book.get("it003")["version"] == sim.items["it003"]["updated_at"]
    assert set(book.get("it003")["owed"]) == {"notes"}  # what its new version owes, from the backlog
    assert "it005" not in book
    sim.clear_log()
    pipeline.run(toy(**sim.source_config(), lookup=True))
    # each sweep asks again for what it does not list, with what else the record owes
    assert [r.path for r in per_item(sim)] == ["/items/it003", "/items/it003/notes"]
    assert loaded(pipeline) == {"notes": 1}  # its detail is unchanged: nothing to load


def test_without_a_lookup_a_sweep_marks_what_it_does_not_list(sim, pipeline):
    pipeline.run(toy(**sim.source_config()))
    sim.hidden.add("it003")
    sim.clear_log()
    pipeline.run(toy(**sim.source_config()))
    assert per_item(sim) == []
    assert [r["id"] for r in rows(pipeline, "items") if r["deleted_at"] is not None] == ["it003"]


def test_a_waiting_record_the_listing_does_not_show_is_asked_for_by_id(sim, pipeline):
    sim.add(20, status="processing")
    sim.add(21, status="processing")
    pipeline.run(toy(**sim.source_config(), lookup=True))
    sim.hidden.update({"it020", "it021"})
    sim.touch("it020", status="done")  # it021 stays processing
    sim.clear_log()
    pipeline.run(toy(**sim.source_config(), lookup=True, sweep=False))
    assert sorted(r.path for r in per_item(sim)) == ["/items/it020", "/items/it021"]
    assert loaded(pipeline) == {"items": 1, "items__tags": 2, "item_bodies": 1}  # it021: nothing new
    assert {r["id"]: r["status"] for r in rows(pipeline, "items")}["it020"] == "done"
    book = Ledger(pipeline.state["sources"]["toy"]).entity("items")
    assert "waiting" not in book.get("it020") and set(book.get("it020")["owed"]) == {"notes"}
    assert book.get("it021")["waiting"]
    sim.clear_log()
    pipeline.run(toy(**sim.source_config(), lookup=True, sweep=False))
    # it020 is done waiting: only what it owes; it021 is asked for while it waits
    assert sorted(r.path for r in per_item(sim)) == ["/items/it020/notes", "/items/it021"]
    assert loaded(pipeline) == {"notes": 1}


def test_a_listing_that_shows_nothing_asks_for_no_known_record(sim, pipeline):
    sim.add(20, status="processing")
    pipeline.run(toy(**sim.source_config(), lookup=True))
    sim.hidden.update(sim.items)
    sim.clear_log()
    pipeline.run(toy(**sim.source_config(), lookup=True))
    from sources._common.report import get_report
    assert per_item(sim) == []
    assert all(r["deleted_at"] is None for r in rows(pipeline, "items"))
    assert any("listed nothing" in w for w in get_report("toy").warnings)


# ---------------------------------------------------------------------- chained entities
class GroupList(Listing):
    """The groups, whole, every run."""

    sweep, timed = True, False

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def pages(self) -> Iterator[list]:
        yield self.client.get("groups").body["groups"]


def refetch_members(ids: set[str]) -> None:
    book = Ledger(dlt.current.source_state()).entity("groups")
    for group_id in ids:
        book.refetch(group_id, "members")


@dlt.source(name="toy")
def toy_groups(base_url: str, token: str) -> Any:
    """Items, then the groups they belong to, in one feed: an item added to or deleted from a
    group makes the group's member list owed again, in the same run."""
    client, report = toy_client(base_url, token)
    now = lambda: datetime.now(UTC)  # noqa: E731
    items = Engine(item_entity(client, parent=lambda i: i.get("group_id"), parent_changed=refetch_members),
                   lambda book: FullList(client), client=client, report=report, now=now)

    def members(work: Work) -> Any:
        return client.get(f"groups/{work.record_id}").body

    groups = Engine(Entity(name="groups", table="groups", key=lambda g: g.get("id"), version=lambda g: g["name"],
                           wants=lambda g: (["members"], False),
                           parts=(Part("members", ("group_items",), fetch=members, not_found=NotFound.DELETED),)),
                    lambda book: GroupList(client), client=client, report=report, now=now)
    return chained_resources("toy_feed", [
        (items, item_tables()),
        (groups, [TableSpec("groups", hints={"primary_key": "id", "write_disposition": MERGE}),
                  TableSpec("group_items", part="members", hints={
                      "primary_key": ["group_id", "item_id"], "merge_key": "group_id", "write_disposition": MERGE},
                      shape=lambda f: [{"group_id": f.work.record_id, "item_id": i}
                                       for i in f.bodies["members"]["items"]])]),
    ], report)


def members(pipeline: dlt.Pipeline) -> set[tuple]:
    return {(r["group_id"], r["item_id"]) for r in rows(pipeline, "group_items")}


def expected_members(sim: ToySimulator) -> set[tuple]:
    return {(i["group_id"], i["id"]) for i in sim.items.values() if i.get("group_id")}


def test_chained_entities_run_in_order_and_a_child_added_or_deleted_refetches_its_parent(
        start_sim, pipeline, tmp_path):
    sim = start_sim(ToySimulator, items=0)
    for i in range(6):
        sim.add(i, group="g1" if i < 3 else "g2")
    pipeline.run(toy_groups(**sim.source_config()))
    assert members(pipeline) == expected_members(sim) and len(rows(pipeline, "items")) == 6
    assert len(rows(pipeline, "notes")) == 6 and {r["id"] for r in rows(pipeline, "groups")} == {"g1", "g2"}
    sim.add(6, group="g1")
    sim.clear_log()
    pipeline.run(toy_groups(**sim.source_config()))
    assert members(pipeline) == expected_members(sim)
    assert [r.path for r in sim.requests(pattern="^/groups/")] == ["/groups/g1"]  # only the one that changed
    del sim.items["it004"]
    sim.clear_log()
    pipeline.run(toy_groups(**sim.source_config()))
    assert members(pipeline) == expected_members(sim) and ("g2", "it004") not in members(pipeline)
    assert [r.path for r in sim.requests(pattern="^/groups/")] == ["/groups/g2"]
    # a table of the second entity alone: the first makes no call
    alone = dlt.pipeline("engine_alone", destination=dlt.destinations.duckdb(str(tmp_path / "a.duckdb")),
                         dataset_name="toy", pipelines_dir=str(tmp_path / "pa"))
    sim.clear_log()
    alone.run(toy_groups(**sim.source_config()).with_resources("group_items"))
    assert loaded(alone) == {"group_items": len(expected_members(sim))}
    assert not sim.requests(pattern="^/items") and len(sim.requests(pattern="^/groups")) == 3


def test_feeds_collect_less_often_and_restore_the_threshold():
    """While feeds run the collector's gen-0 threshold is raised; the last feed to end (or
    be closed early, feeds interleaved by dlt) puts the process's own back; a collector
    the user disabled stays disabled."""
    import gc

    from sources._common.engine import FEED_GC_THRESHOLD, fewer_collections

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        first, second = fewer_collections(), fewer_collections()
        first.__enter__()
        assert gc.get_threshold() == (FEED_GC_THRESHOLD, 10, 10)
        second.__enter__()
        first.__exit__(None, None, None)  # the other feed still runs
        assert gc.get_threshold()[0] == FEED_GC_THRESHOLD
        second.__exit__(None, None, None)
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(0)
        with fewer_collections():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
