"""Offset-paged lists: every page in order, the pages after the first fetched concurrently.

The API pages with `limit`/`offset` and reports `pagination.total`, so once the first page is
in, every other offset is known and they can be fetched side by side (`map_ordered`, pages
still yielded in order). Lists are newest first: a record added while paging shifts later
pages by one (a record seen twice: harmless); one deleted while paging shifts them back (a
record missed). `stable` tells whether `total` held still, and only a stable, complete
listing may be used to decide that something was deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._common.concurrency import map_ordered
from .._common.http import ApiClient
from .._common.paginators import OffsetPaginator, dig


class Listing:
    """Iterate `pages()`; afterwards `complete` and `stable` say what the listing is worth."""

    def __init__(self, client: ApiClient, path: str, params: dict[str, Any] | None, page_size: int) -> None:
        self.client, self.path, self.page_size = client, path, page_size
        self.params = {k: v for k, v in (params or {}).items() if v is not None}
        self.complete = False
        self.stable = True
        self._total: int | None = None

    def _fetch(self, offset: int) -> tuple[list, bool, Any]:
        body = self.client.get(self.path, {**self.params, "limit": self.page_size, "offset": offset}).body
        items = dig(body, "data") or []
        if not isinstance(items, list):
            items = []
        total = dig(body, "pagination.total")
        if self._total is not None and total != self._total:
            self.stable = False
        return items, bool(dig(body, "pagination.has_more")), total

    def pages(self) -> Iterator[list[dict]]:
        """Every page, in the API's order (the first page's total decides the rest)."""
        items, more, total = self._fetch(0)
        self._total = total
        yield items
        offset = len(items)
        if more and isinstance(total, int) and len(items) == self.page_size:
            offsets = range(self.page_size, total, self.page_size)
            workers = self.client.settings.concurrency
            for at, result in map_ordered(self._fetch, offsets, workers):
                if isinstance(result, BaseException):
                    raise result
                items, more, _ = result
                offset = at + len(items)
                yield items
        while more and items:  # the list grew while it was read, or no total was given
            items, more, _ = self._fetch(offset)
            offset += len(items)
            yield items
        self.complete = True


def sequential_pages(client: ApiClient, path: str, params: dict[str, Any] | None,
                     page_size: int) -> Iterator[list[dict]]:
    """Pages one after another, for readers that stop early (newest first, down to a cursor)."""
    paginator = OffsetPaginator(page_size, total_path="pagination.total",
                                has_more_path="pagination.has_more")
    for page in client.paginate(path, paginator=paginator, items_path="data", params=params):
        yield page.items
