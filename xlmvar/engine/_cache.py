"""A content-keyed, memory-bounded cache for results that cost much more than their inputs.

A desk's sheet calls MARGINALVAR, COMPONENTVAR, RISKREPORT and friends many times over the
same ranges; each call hands Python fresh arrays with the same contents.  Keying on the
*content* rather than on object identity lets those calls share one validated and factorised
covariance, or one table of simulated scenarios.

Identity, priced to the computation
-----------------------------------
The lookup key is cheap: the dtype and shape of each array argument, a sample of at most 64
of its elements (a fixed grid of rows and columns) and the pickle of every other argument.
A key that matches is then *verified* by comparing each stored array with the given one,
element for element (the bit patterns, so -0.0 differs from 0.0).  A verified hit
therefore reads each input once, at memory speed (about 20x the speed of a cryptographic
hash), never more bytes than the computation itself reads, and it is exact: no two
different inputs share a result.  The one exception is the what-if check below.

A what-if call - the same covariance content in a fresh array, new positions - needs the
product of the matrix with the positions as well: :func:`same_content_product` checks
and multiplies the matrix in row blocks that stay in the CPU cache (block k of the given
array checked, then block k times the vector), so that a hit reads the given array once.
A cache made with ``digests=True`` (the validated covariances) checks each block against
the 128-bit digest of the stored block (XXH3-128, with a seed drawn at random for each
process and never written anywhere), so a what-if call reads no more bytes than its
product does: the only identity that meets issue 13's 5x goal, since an exact comparison
must also read the stored copy, 8 MB at N = 1000, usually no longer in the CPU cache
(``benchmarks/bench_whatif.py`` prints both).  The product is still computed from the
given array; what the call takes from the cache is that the matrix was validated
(symmetric, positive semi-definite) and its volatilities ``sqrt(diag)``.  A matrix that
differs passes only if every block that differs has the digest of the stored block: a
chance of about 2**-128 for a block of accidental content, and a matrix built to collide
would have to be built against a seed that never leaves the process.  Without the
``xxhash`` package (a dependency, in Pyodide too), and for every other cache, the
comparison is exact: C's ``memcmp`` (loaded with ctypes, checked on first use) where the
platform has one, else numpy.

Only what pays is cached: a method whose hit would not be at least 10x faster than its miss
(one pass over a returns history, a product with a covariance) does not cache at all;
``when`` and ``min_bytes`` say which calls cache (see ``benchmarks/bench_api.py``).

Ownership
---------
The cache keeps *copies* of the arrays it compares against, never a view of a caller's
array, and it never changes the flags of a caller's array: a caller who mutates an input
(or the base array an input is a view of) afterwards gets a miss and a fresh result.  The
copies are made *before* the result is computed, and the result is computed from them, so
a caller's array written to by another thread during the call cannot leave one content in
the cache paired with a result computed from another.  The results it keeps are read-only
(a result that shares memory with an argument is copied first), and each caller gets new
read-only views of them: reshaping one, or reinterpreting its dtype, changes that view
alone, and NumPy refuses to make it writeable, so one caller cannot corrupt what the next
caller gets.  The least recently used entry is evicted beyond the byte budget (not every
entry that shares its key).  Exceptions are not cached.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pickle
import threading
from collections import OrderedDict

import numpy as np

try:
    from xxhash import xxh3_128_digest as _xxh3_128
except ImportError:  # a declared dependency; without it every check is exact
    _xxh3_128 = None

__all__ = [
    "ContentCache",
    "named_cache",
    "key_of",
    "array_key",
    "memoize",
    "clear_caches",
    "cache_info",
    "same_content",
    "same_content_product",
    "block_digests",
    "owned_copies",
    "product",
]

_CACHES: list["ContentCache"] = []

#: Elements sampled per array for the lookup key (a grid of at most 8 rows x 8 columns).
_SAMPLE_SIDE = 8


def _sample(arr: np.ndarray) -> bytes:
    """At most about 64 elements of ``arr`` at fixed positions, as bytes: a cheap bucket key."""
    if arr.size <= _SAMPLE_SIDE * _SAMPLE_SIDE:
        return arr.tobytes()
    if arr.flags.c_contiguous:
        flat = arr.reshape(-1)
        return flat[:: -(-flat.size // (_SAMPLE_SIDE * _SAMPLE_SIDE))].tobytes() + flat[-1:].tobytes()
    index = tuple(np.linspace(0, n - 1, min(n, _SAMPLE_SIDE)).astype(np.intp) for n in arr.shape)
    return arr[np.ix_(*index)].tobytes()


def _as_key_array(value):
    """``value`` if it is a numeric ndarray, else ``None``.

    A list or tuple is not converted: ``numpy.asarray([True, 1.0])`` is ``[1.0, 1.0]``, so
    a cell that validation refuses (TRUE) would share the key and the content of a valid
    book and get its cached result.  It goes into the key as it is, pickled, types and bits
    included (see :func:`_split`).
    """
    if isinstance(value, np.ndarray):
        return value if value.dtype.kind in "biuf" else None
    return None


def same_content(stored: np.ndarray, given: np.ndarray) -> bool:
    """True if ``given`` has exactly the dtype, shape and bit pattern of ``stored``.

    ``stored`` is C-contiguous (the cache's own copy); ``given`` may be any array.  Floats
    are compared as the unsigned integers of their bits, whatever the layout of ``given``
    (C's ``memcmp`` when it is C-contiguous and ctypes can load it): -0.0 is not 0.0 and
    the comparison is exact.
    (Input holding NaN is refused by validation and so never stored.)
    """
    if stored.dtype != given.dtype or stored.shape != given.shape:
        return False
    memcmp = _memcmp() if stored.flags.c_contiguous and given.flags.c_contiguous else None
    if memcmp is not None:
        return memcmp(stored.ctypes.data, given.ctypes.data, stored.nbytes) == 0
    kind = {8: np.uint64, 4: np.uint32, 2: np.uint16, 1: np.uint8}.get(stored.dtype.itemsize)
    if kind is None:  # a 16-byte float or complex: its bytes, compared in C order
        return stored.tobytes() == given.tobytes()
    return bool(np.array_equal(stored.view(kind), given.view(kind)))  # a view of any layout


#: Bytes of each array in one block of :func:`same_content_product`: the block just
#: compared (of the given array, and of the stored copy: 1 MiB together) is still in the
#: CPU cache when it is multiplied.  The size is not critical: on the 2-core development
#: machine (512 KiB of L2 per core, 32 MiB of L3) blocks of 128 KiB to 4 MiB timed the same
#: within the noise at N = 300 ... 2000; smaller blocks pay more calls (a few us each).
BLOCK_BYTES = 512 << 10


def _block_rows(matrix: np.ndarray) -> int:
    """Rows in each block of a 2-D array: whole rows, about :data:`BLOCK_BYTES` in all.
    The blocks depend on the shape and dtype only."""
    return max(1, BLOCK_BYTES // max(matrix.itemsize * matrix.shape[1], 1))


def product(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` computed one row block at a time.

    The blocks of :func:`same_content_product`, so that a product computed after a cache
    miss and one computed during a hit are equal to the last bit (each row is one dot
    product of the same BLAS kernel either way).
    """
    out = np.empty(matrix.shape[0], np.promote_types(matrix.dtype, vector.dtype))
    step = _block_rows(matrix)
    for start in range(0, matrix.shape[0], step):
        np.matmul(matrix[start : start + step], vector, out=out[start : start + step])
    return out


_MEMCMP: list = []  # [C's memcmp or None], loaded on first use


def _load_memcmp():
    """C's ``memcmp`` through ctypes, or ``None`` where ctypes or the C library is missing
    (Pyodide) or the function does not pass a check of equal, unequal and signed zeros."""
    try:
        import ctypes
        import sys

        library = ctypes.cdll.msvcrt if sys.platform == "win32" else ctypes.CDLL(None)
        memcmp = library.memcmp
        memcmp.restype = ctypes.c_int
        memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
        a, b, c = np.array([1.0, 0.0, 2.0]), np.array([1.0, 0.0, 2.0]), np.array([1.0, -0.0, 2.0])
        ok = memcmp(a.ctypes.data, b.ctypes.data, a.nbytes) == 0 and memcmp(a.ctypes.data, c.ctypes.data, a.nbytes) != 0
        return memcmp if ok else None
    except Exception:  # no ctypes, no C library, no memcmp in it
        return None


def _memcmp():
    if not _MEMCMP:
        _MEMCMP.append(_load_memcmp())
    return _MEMCMP[0]


#: The seed of the block digests: drawn once per process, never written anywhere.
_SEED = int.from_bytes(os.urandom(8), "little")


def block_digests(matrix: np.ndarray):
    """The 128-bit digests of the row blocks of ``matrix`` (C-contiguous, 2-D), or ``None``.

    XXH3-128 with the process's random seed, block by block (:func:`product`'s blocks), as
    :func:`same_content_product` checks them; ``None`` without the ``xxhash`` package or
    for an array that is not a C-contiguous table.
    """
    if _xxh3_128 is None or matrix.ndim != 2 or not matrix.flags.c_contiguous:
        return None
    step = _block_rows(matrix)
    return tuple(_xxh3_128(matrix[start : start + step], _SEED) for start in range(0, matrix.shape[0], step))


def same_content_product(stored: np.ndarray, given: np.ndarray, vector: np.ndarray, digests=None):
    """``given @ vector`` if ``given`` has the content of ``stored``, else ``None``.

    Parameters
    ----------
    stored : ndarray, shape (m, n), float64, C-contiguous
        The cache's own copy.
    given : ndarray
        The array of the call (any layout; a different dtype or shape is a miss).
    vector : ndarray, shape (n,), float64
    digests : tuple of bytes, optional
        :func:`block_digests` of ``stored``: the blocks of ``given`` are then checked
        against them instead of against ``stored`` itself.

    One pass over ``given``: each row block ``k`` (:func:`product`'s blocks) is multiplied
    by ``vector`` and then, while it is still in the CPU cache, checked - its digest against
    ``digests[k]`` (reading ``given`` only), or compared bit for bit with block ``k`` of
    ``stored`` (so -0.0 is not 0.0).  The first block that differs ends the pass: a miss
    (the products computed so far are discarded).  The product is computed from the blocks
    of ``given``, so it equals ``product(stored, vector)`` to the last bit when the contents
    are equal.
    A ``given`` that is not C-contiguous is compared whole, exactly (:func:`same_content`),
    and the stored copy multiplied.
    """
    if stored.dtype != given.dtype or stored.shape != given.shape:
        return None
    if not given.flags.c_contiguous:
        return product(stored, vector) if same_content(stored, given) else None
    out = np.empty(stored.shape[0], np.promote_types(stored.dtype, vector.dtype))
    step = _block_rows(stored)
    row_bytes = stored.itemsize * stored.shape[1]
    digest = _xxh3_128 if digests is not None else None
    memcmp = _memcmp() if digest is None else None
    if memcmp is not None:
        here, there = stored.ctypes.data, given.ctypes.data  # both arrays are referenced below
    for k, start in enumerate(range(0, stored.shape[0], step)):
        block = given[start : start + step]
        # multiplied first: BLAS streams the block from memory faster than the hash or the
        # comparison does, which then read it from the CPU cache (N = 1000: 0.54 ms against
        # 0.70 ms checked first)
        np.matmul(block, vector, out=out[start : start + step])
        if digest is not None:
            if digest(block, _SEED) != digests[k]:
                return None
        elif memcmp is not None:
            if memcmp(here + start * row_bytes, there + start * row_bytes, block.nbytes) != 0:
                return None
        elif not same_content(stored[start : start + step], block):
            return None
    return out


def _split(args, kwargs):
    """Arrays of the call (to verify) and the pickle of everything else (part of the key).

    Numeric ndarrays are verified element for element; anything else, lists of numbers
    included, is part of the key itself, pickled (exact: a float's bits, ``True`` is not
    ``1.0``).  Returns ``None`` if an argument cannot be keyed (an object array: text,
    blanks), in which case the call is not cached: such input is refused by validation
    anyway.
    """
    arrays, rest = [], []
    for name, value in (*((None, v) for v in args), *sorted(kwargs.items())):
        arr = _as_key_array(value)
        if arr is not None:
            arrays.append(arr)
            rest.append((name, "array", arr.dtype.str, arr.shape, _sample(arr)))
        elif isinstance(value, np.ndarray):
            return None
        else:
            rest.append((name, value))
    try:
        return arrays, pickle.dumps(rest, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return None


def key_of(*args, **kwargs):
    """``(arrays, key)`` of a call for :meth:`ContentCache.lookup`, or ``None`` if it cannot be
    keyed (an object array: text or blanks)."""
    return _split(args, kwargs)


def array_key(arr):
    """``(arrays, key)`` of one array alone, as :func:`key_of` gives for a call, or ``None``
    if it cannot be keyed; a key of another form than :func:`key_of`'s (no pickle: a
    cheaper key for the covariances, whose cache is keyed by this alone)."""
    if _as_key_array(arr) is None:
        return None
    return [arr], b"%b|%b|" % (arr.dtype.str.encode(), repr(arr.shape).encode()) + _sample(arr)


def owned_copies(arrays) -> list:
    """Read-only C-contiguous copies of ``arrays``, owned by the cache.

    Made *before* a result is computed, and the result computed from them: a caller's
    array that another thread writes to during the call cannot pair one content (the copy
    kept to verify later hits) with a result computed from another.
    """
    copies = [np.array(a, order="C", copy=True) for a in arrays]
    for copy in copies:
        copy.flags.writeable = False
    return copies


def _with_copies(args, kwargs, copies):
    """``args`` and ``kwargs`` with each array that :func:`_split` keys replaced, in the same
    order, by its copy."""
    copies = iter(copies)
    args = tuple(next(copies) if _as_key_array(v) is not None else v for v in args)
    kwargs = {k: kwargs[k] for k in kwargs}
    for k in sorted(kwargs):
        if _as_key_array(kwargs[k]) is not None:
            kwargs[k] = next(copies)
    return args, kwargs


def _is_same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """True if ``a`` and ``b`` are the same memory seen the same way (so the same content)."""
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and a.strides == b.strides
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def _freeze(value, copies):
    """Make the arrays inside a result read-only and the cache's own.

    A result array that *is* one of the input ``copies`` (a validated float matrix is often
    its input itself) stays that copy, which the cache keeps anyway to verify hits: one
    copy serves both, and counts once.  Any other array that is a view, or shares memory
    with a copy, is copied.

    Returns the frozen value and its size in bytes.
    """
    if isinstance(value, np.ndarray):
        for copy in copies:
            if _is_same_array(value, copy):
                return copy, 0
        if value.base is not None or any(np.may_share_memory(value, a) for a in copies):
            value = np.array(value, order="C", copy=True)
        value.flags.writeable = False
        return value, value.nbytes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        size, changes = 64, {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            frozen, n = _freeze(item, copies)
            size += n
            if frozen is not item:
                changes[f.name] = frozen
        return (dataclasses.replace(value, **changes) if changes else value), size
    if isinstance(value, tuple):
        items = [_freeze(v, copies) for v in value]
        frozen = [v for v, _ in items]
        value = type(value)(*frozen) if hasattr(value, "_fields") else tuple(frozen)
        return value, sum(n for _, n in items) + 64
    return value, 64


def _handout(value):
    """What a caller gets of a frozen value: each array a new view of the cache's array.

    The view is read-only, and NumPy refuses to make a view of a read-only array writeable;
    reshaping it (``a.shape = ...``) or reinterpreting it (``a.dtype = ...``) changes that
    view alone.  So one caller cannot change what the next one gets (short of reaching for
    ``a.base`` and making the cache's own array writeable).  Dataclasses and tuples are
    rebuilt around the views.
    """
    if isinstance(value, np.ndarray):
        return value.view()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _handout(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        items = [_handout(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


class _Entry:
    """One cached result: the key, the copies of the arrays it was computed from, the frozen
    value, its size in bytes and the block digests of its one array (or ``None``)."""

    __slots__ = ("key", "stored", "value", "size", "digests")

    def __init__(self, key, stored, value, size, digests):
        self.key, self.stored, self.value, self.size, self.digests = key, stored, value, size, digests


class ContentCache:
    """Least-recently-used cache of results keyed on the content of the arguments.

    Each entry holds read-only C-contiguous copies of the argument arrays, made before the
    result was computed from them and kept to verify a hit exactly (:func:`same_content`),
    and the read-only result (which may hold one of those copies, see :func:`_freeze`); its
    size is the bytes of both and of the key.  Entries whose arrays share the key sample
    share a bucket; the least recently used *entry* is evicted beyond ``max_bytes``, never
    the one just stored.  Callers get views of the cached arrays (:func:`_handout`).  With
    ``digests=True`` an entry of one table also keeps its :func:`block_digests`, against
    which :meth:`lookup_product` checks a what-if call's array.
    """

    def __init__(self, name: str, max_bytes: int = 256 << 20, digests: bool = False):
        self.name = name
        self.max_bytes = max_bytes
        self.digests = digests
        self._data: dict[bytes, list[_Entry]] = {}  # key -> entries, oldest first
        self._lru: OrderedDict[_Entry, None] = OrderedDict()  # least recently used first
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def _bucket(self, key: bytes) -> list:
        with self._lock:
            return list(self._data.get(key, ()))

    def _hit(self, entry: _Entry) -> None:
        with self._lock:
            self.hits += 1
            if entry in self._lru:  # not evicted meanwhile by another thread
                self._lru.move_to_end(entry)

    def lookup(self, key: bytes, arrays):
        """The cached value for these arrays under ``key``, or ``_MISS``."""
        for entry in self._bucket(key):
            if all(same_content(s, a) for s, a in zip(entry.stored, arrays)):
                self._hit(entry)
                return _handout(entry.value)
        return _MISS

    def lookup_product(self, key: bytes, given: np.ndarray, vector: np.ndarray):
        """``(value, given @ vector)`` if ``given``, the one array of ``key``, was stored;
        else ``(_MISS, None)``.  The check (against the stored block digests if the cache
        keeps them, else the stored copy) and the product are one pass over ``given``
        (:func:`same_content_product`).

        ``value`` is the cache's own frozen value, not a caller's view of it
        (:func:`_handout`, whose rebuilding of a dataclass costs a what-if call about a tenth
        of its time): for a caller that reads it and hands none of it out.
        """
        for entry in self._bucket(key):
            result = None
            if len(entry.stored) == 1:
                result = same_content_product(entry.stored[0], given, vector, entry.digests)
            if result is not None:
                self._hit(entry)
                return entry.value, result
        return _MISS, None

    def lookup_identity(self, arr: np.ndarray, field: str = "matrix"):
        """The cached value whose ``field`` ``arr`` is a handed-out view of (same memory, seen
        the same way: a read-only array of the cache's own, so its content is the one
        verified when it was stored), or ``None``."""
        base = arr.base
        if not isinstance(base, np.ndarray):
            return None
        with self._lock:
            for entry in reversed(self._lru):
                if getattr(entry.value, field, None) is base:
                    if not _is_same_array(arr, base):
                        return None
                    self._lru.move_to_end(entry)
                    self.hits += 1
                    return _handout(entry.value)
        return None

    def store(self, key: bytes, copies, value):
        """Keep ``value``, computed from ``copies`` (:func:`owned_copies` of the key's arrays),
        frozen; return what a caller gets of it."""
        value, size = _freeze(value, copies)
        size += sum(s.nbytes for s in copies) + len(key)  # a list's content is in its key
        digests = block_digests(copies[0]) if self.digests and len(copies) == 1 else None
        with self._lock:
            self.misses += 1
            if size <= self.max_bytes:
                entry = _Entry(key, copies, value, size, digests)
                self._data.setdefault(key, []).append(entry)
                self._lru[entry] = None
                self._bytes += size
                while self._bytes > self.max_bytes:
                    self._evict(next(iter(self._lru)))
        return _handout(value)

    def _evict(self, entry: _Entry) -> None:
        """Drop one entry (``_lock`` held)."""
        del self._lru[entry]
        bucket = self._data[entry.key]
        bucket.remove(entry)
        if not bucket:
            del self._data[entry.key]
        self._bytes -= entry.size

    def get_or_compute(self, args, kwargs, func):
        """``func(*args, **kwargs)``: cached if the contents of the arguments were seen, else
        computed from copies of the arrays (:func:`owned_copies`) and kept."""
        split = _split(args, kwargs)
        if split is None:
            return func(*args, **kwargs)
        arrays, key = split
        value = self.lookup(key, arrays)
        if value is _MISS:
            copies = owned_copies(arrays)
            args, kwargs = _with_copies(args, kwargs, copies)
            value = self.store(key, copies, func(*args, **kwargs))
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._lru.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def info(self) -> dict:
        with self._lock:
            return {"name": self.name, "entries": len(self._lru), "bytes": self._bytes, "hits": self.hits, "misses": self.misses}


_MISS = object()


def named_cache(name: str, max_bytes: int = 256 << 20, digests: bool = False) -> ContentCache:
    """A :class:`ContentCache` that :func:`clear_caches` and :func:`cache_info` know about."""
    cache = ContentCache(name, max_bytes, digests)
    _CACHES.append(cache)
    return cache


def memoize(max_bytes: int = 256 << 20, *, when=None, min_bytes: int = 0):
    """Decorate a pure function so that calls with equal contents share one result.

    Parameters
    ----------
    max_bytes : int
        Budget of the cache (inputs kept for verification plus results).
    when : callable, optional
        ``when(*args, **kwargs) -> bool``: cache only the calls for which it is true (e.g.
        only the methods whose hit pays); the others are computed every time.
    min_bytes : int
        Calls whose array arguments hold fewer bytes are computed every time: below it a
        hit would not be 10x faster than the computation.

    Exceptions are not cached: bad input raises its message on every call.
    """

    def decorate(func):
        cache = named_cache(f"{func.__module__}.{func.__qualname__}", max_bytes)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if when is not None and not when(*args, **kwargs):
                return func(*args, **kwargs)
            if min_bytes and _array_bytes(args, kwargs) < min_bytes:
                return func(*args, **kwargs)
            return cache.get_or_compute(args, kwargs, func)

        wrapper.cache = cache
        return wrapper

    return decorate


def _array_bytes(args, kwargs) -> int:
    return sum(v.nbytes for v in (*args, *kwargs.values()) if isinstance(v, np.ndarray))


def clear_caches() -> None:
    """Empty every xlmvar cache."""
    for cache in _CACHES:
        cache.clear()


def cache_info() -> list[dict]:
    """Entries, bytes, hits and misses of every xlmvar cache."""
    return [cache.info() for cache in _CACHES]
