"""A content-keyed, memory-bounded cache for derived results.

A desk's sheet calls MARGINALVAR, COMPONENTVAR, RISKREPORT and friends many times over the
same ranges; each call hands Python fresh arrays with the same contents.  Keying on the
*content* (a digest of dtype, shape and bytes) rather than on object identity lets those
calls share one validated covariance, one Cholesky factor, one set of simulated scenarios
or one decomposition.  Cached arrays are returned read-only, so a caller cannot corrupt
what the next caller gets; the cache evicts least-recently-used entries beyond its byte
budget.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pickle
import threading
from collections import OrderedDict

import numpy as np

__all__ = ["ContentCache", "memoize", "clear_caches", "cache_info"]

_CACHES: list["ContentCache"] = []


def _feed(digest, value) -> None:
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        digest.update(b"nd")
        digest.update(value.dtype.str.encode())
        digest.update(repr(value.shape).encode())
        digest.update(np.ascontiguousarray(value).view(np.uint8).data)
    elif isinstance(value, (list, tuple)):
        digest.update(f"seq{type(value).__name__}{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, dict):
        digest.update(b"map")
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    else:  # scalars, strings, None, object arrays: their pickle is their content
        digest.update(b"obj")
        digest.update(pickle.dumps(value, protocol=5))


def content_key(*args, **kwargs) -> bytes:
    """A digest of the arguments' contents (arrays by dtype, shape and bytes)."""
    digest = hashlib.blake2b(digest_size=20)
    _feed(digest, args)
    _feed(digest, kwargs)
    return digest.digest()


def _freeze(value):
    """Make arrays inside ``value`` read-only; return the value and its size in bytes."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
        return value, value.nbytes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        size = 0
        for f in dataclasses.fields(value):
            _, n = _freeze(getattr(value, f.name))
            size += n
        return value, size + 64
    if isinstance(value, tuple):
        return value, sum(_freeze(v)[1] for v in value) + 64
    return value, 64


class ContentCache:
    """Least-recently-used cache bounded by the bytes of the arrays it holds."""

    def __init__(self, name: str, max_bytes: int = 256 << 20):
        self.name = name
        self.max_bytes = max_bytes
        self._data: OrderedDict[bytes, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def get_or_compute(self, key: bytes, compute):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key][0]
        value, size = _freeze(compute())
        with self._lock:
            self.misses += 1
            if size <= self.max_bytes and key not in self._data:
                self._data[key] = (value, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, old) = self._data.popitem(last=False)
                    self._bytes -= old
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def info(self) -> dict:
        return {"name": self.name, "entries": len(self._data), "bytes": self._bytes, "hits": self.hits, "misses": self.misses}


def memoize(max_bytes: int = 256 << 20):
    """Decorate a pure function so that calls with equal contents share one result.

    Exceptions are not cached: bad input raises its message on every call.
    """

    def decorate(func):
        cache = ContentCache(f"{func.__module__}.{func.__qualname__}", max_bytes)
        _CACHES.append(cache)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            key = content_key(*args, **kwargs)
            return cache.get_or_compute(key, lambda: func(*args, **kwargs))

        wrapper.cache = cache
        return wrapper

    return decorate


def clear_caches() -> None:
    """Empty every xlmvar cache."""
    for cache in _CACHES:
        cache.clear()


def cache_info() -> list[dict]:
    """Entries, bytes, hits and misses of every xlmvar cache."""
    return [cache.info() for cache in _CACHES]
