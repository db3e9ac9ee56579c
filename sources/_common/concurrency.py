"""Bounded, order-preserving fan-out of per-item calls over threads."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_ordered(fn: Callable[[T], R], items: Iterable[T], workers: int,
                *, window: int | None = None) -> Iterator[tuple[T, R | BaseException]]:
    """Yields `(item, fn(item) or the exception it raised)` in input order.

    At most `window` calls (default `8 * workers`) are queued or in flight, so memory stays
    flat no matter how many items come; the window is deep enough that the workers keep
    fetching while the consuming thread hands a batch of results to dlt. Items are pulled lazily from `items`, which may itself be a
    paging generator. Closing the iterator early cancels what has not started.
    """
    if workers <= 1:
        for item in items:
            try:
                yield item, fn(item)
            except Exception as exc:  # handed to the caller, who decides
                yield item, exc
        return
    window = window or workers * 8
    pending: deque[tuple[T, Future]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meeting-elt") as pool:
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.append((item, pool.submit(fn, item)))
                if not pending:
                    return
                item, future = pending.popleft()
                try:
                    yield item, future.result()
                except Exception as exc:
                    yield item, exc
        finally:
            for _, future in pending:
                future.cancel()
