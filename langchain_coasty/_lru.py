"""``BoundedDict``: the one bounded, thread-safe, least-recently-used map of the package."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BoundedDict"]

_K = TypeVar("_K")
_V = TypeVar("_V")


class BoundedDict(Generic[_K, _V]):
    """A thread-safe map that forgets its least recently used entries past ``maxsize``.

    ``pinned(value)``, when given, keeps an entry from being forgotten while it is true (a
    lock that is held, say); the map then grows past ``maxsize`` until it can evict again.
    """

    def __init__(self, maxsize: int, *, pinned: Callable[[_V], bool] | None = None) -> None:
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._maxsize = maxsize
        self._pinned = pinned
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._put(key, value)

    def get_or_make(self, key: _K, make: Callable[[], _V]) -> _V:
        """The value under ``key``, made with ``make()`` and stored when there is none."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                item = make()
                self._put(key, item)
            else:
                self._items.move_to_end(key)
            return item

    def pop(self, key: _K) -> _V | None:
        """Remove and return the value under ``key`` (None when there is none)."""
        with self._lock:
            return self._items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _put(self, key: _K, value: _V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._maxsize:
            oldest = next(iter(self._items.values()))
            if self._pinned is not None and self._pinned(oldest):
                break
            self._items.popitem(last=False)
