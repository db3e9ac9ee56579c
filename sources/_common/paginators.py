"""Paginators, after dlt's four-method protocol, for httpx.

A paginator is told about each page (`update_state`), and says whether there is a next
one (`has_next_page`) and how to ask for it (`update_request`). The next-reference setter
decides `has_next_page`, so the loop can run neither one page too far nor stop one too
early, and a reference the API already gave once raises `PaginationLoop`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import PaginationLoop

if TYPE_CHECKING:
    from .http import ApiResponse


@dataclass
class PageRequest:
    """The mutable request a paginator steers: a path or absolute URL and its params."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)


def dig(body: Any, path: str | Sequence[str] | None) -> Any:
    """`dig(body, "pagination.next_cursor")`; None where any step is missing."""
    if path is None:
        return body
    keys = path.split(".") if isinstance(path, str) else path
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


class BasePaginator:
    """Protocol: init_request, update_state, update_request, has_next_page."""

    def __init__(self) -> None:
        self.has_next_page = True

    def init_request(self, request: PageRequest) -> None:  # noqa: B027 - optional hook
        """Adds first-page parameters."""

    def update_state(self, answer: ApiResponse, items: list) -> None:
        raise NotImplementedError

    def update_request(self, request: PageRequest) -> None:
        raise NotImplementedError


class BaseReferencePaginator(BasePaginator):
    """Follows a reference (cursor, URL) handed out by the API; refuses to see one twice."""

    def __init__(self) -> None:
        super().__init__()
        self._next_reference: Any = None
        self._seen: set[Any] = set()

    @property
    def next_reference(self) -> Any:
        return self._next_reference

    @next_reference.setter
    def next_reference(self, value: Any) -> None:
        if value in (None, ""):
            self.has_next_page = False
        else:
            if value in self._seen:
                raise PaginationLoop(f"the API returned the same page reference twice ({str(value)[:60]!r})")
            self._seen.add(value)
            self.has_next_page = True
        self._next_reference = value


class CursorPaginator(BaseReferencePaginator):
    """Opaque cursor from the body, sent back as a query parameter."""

    def __init__(self, cursor_path: str = "pagination.next_cursor", cursor_param: str = "cursor",
                 has_more_path: str | None = None) -> None:
        super().__init__()
        self.cursor_path = cursor_path
        self.cursor_param = cursor_param
        self.has_more_path = has_more_path

    def update_state(self, answer: ApiResponse, items: list) -> None:
        cursor = dig(answer.body, self.cursor_path)
        if self.has_more_path is not None and dig(answer.body, self.has_more_path) is False:
            cursor = None
        self.next_reference = cursor

    def update_request(self, request: PageRequest) -> None:
        request.params[self.cursor_param] = self.next_reference


class NextUrlPaginator(BaseReferencePaginator):
    """An absolute `next` URL that already carries every query parameter."""

    def __init__(self, next_path: str = "next") -> None:
        super().__init__()
        self.next_path = next_path

    def update_state(self, answer: ApiResponse, items: list) -> None:
        self.next_reference = dig(answer.body, self.next_path)

    def update_request(self, request: PageRequest) -> None:
        request.url = str(self.next_reference)
        request.params = {}


class OffsetPaginator(BasePaginator):
    """`limit`/`offset`; stops on a short page, `has_more: false`, or reaching `total`."""

    def __init__(self, limit: int, *, offset: int = 0, limit_param: str = "limit",
                 offset_param: str = "offset", total_path: str | None = None,
                 has_more_path: str | None = None) -> None:
        super().__init__()
        self.limit = limit
        self.offset = offset
        self.limit_param = limit_param
        self.offset_param = offset_param
        self.total_path = total_path
        self.has_more_path = has_more_path

    def init_request(self, request: PageRequest) -> None:
        request.params[self.limit_param] = self.limit
        request.params[self.offset_param] = self.offset

    def update_state(self, answer: ApiResponse, items: list) -> None:
        self.offset += len(items)
        total = dig(answer.body, self.total_path) if self.total_path else None
        has_more = dig(answer.body, self.has_more_path) if self.has_more_path else None
        if len(items) == 0 or len(items) < self.limit or has_more is False or (
            isinstance(total, int) and self.offset >= total
        ):
            self.has_next_page = False

    def update_request(self, request: PageRequest) -> None:
        request.params[self.offset_param] = self.offset


class PageNumberPaginator(BasePaginator):
    """`page=1,2,…`; stops on an empty or short page, or past `total_pages`."""

    def __init__(self, *, page_size: int | None = None, start: int = 1, page_param: str = "page",
                 size_param: str | None = "size", total_pages_path: str | None = None,
                 max_pages: int = 100_000) -> None:
        super().__init__()
        self.page = start
        self.page_size = page_size
        self.page_param = page_param
        self.size_param = size_param
        self.total_pages_path = total_pages_path
        self.max_pages = max_pages
        self._pages = 0

    def init_request(self, request: PageRequest) -> None:
        request.params[self.page_param] = self.page
        if self.size_param and self.page_size:
            request.params[self.size_param] = self.page_size

    def update_state(self, answer: ApiResponse, items: list) -> None:
        self._pages += 1
        total_pages = dig(answer.body, self.total_pages_path) if self.total_pages_path else None
        if self._pages >= self.max_pages:
            raise PaginationLoop(f"more than {self.max_pages} pages: refusing to go on")
        if not items or (self.page_size and len(items) < self.page_size) or (
            isinstance(total_pages, int) and self.page >= total_pages
        ):
            self.has_next_page = False
        self.page += 1

    def update_request(self, request: PageRequest) -> None:
        request.params[self.page_param] = self.page
