"""The rank order of scored joints, the same on every numpy version and CPU.

poseval and the PoseTrack21 scorer rank each joint's detections with ``scores.argsort()[::-1]``, numpy's
default sort, which is not stable: the order it gives tied scores is an implementation detail. It changed
between numpy 1.x (introsort, 1.22 = 1.26) and 2.x (SIMD sorts, which also differ between AVX2 and
AVX-512 CPUs), and the AP of tie-heavy inputs moves with it (the package README, "poseval behaviour
reproduced", item 9).

posetrack-eval fixes the order: descending score, and tied scores in the order numpy 1.x's default
``argsort`` puts them, reversed, exactly as the PoseTrack21 scorer ranks on the numpy 1.22 it pins (and
poseval on any numpy 1.x). That algorithm is reimplemented below (``npysort/quicksort.cpp``: median-of-3
quicksort, insertion sort for runs of at most 16, heapsort past the depth limit), so no numpy version
changes it; the ranking itself runs numpy's generic introsort, the same algorithm in C, on the scores'
uint16 dense ranks (or on the scores as ``longdouble``), once checked to agree with the reimplementation.
Only a tie between a true and a false positive can change AP; inputs without one take numpy's default
ascending sort, reversed, which gives the same AP. `tie_order="installed"` instead uses this machine's
numpy, to reproduce a reference run made here.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["TieOrder", "descending_order", "mixed_ties", "numpy1_argsort", "reference_argsort"]

TieOrder = Literal["numpy1", "installed"]

_SMALL = 15  # numpy's SMALL_QUICKSORT: partitions of at most 16 elements are insertion-sorted


def _tie_groups(scores: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
    """An ascending order of the scores and, along it, each sample's group of equal scores (NaNs are one group).

    Shapes:
        scores: Float[S] -> (Int[S], Int[S])
    """
    order = np.argsort(scores)  # any ascending order: only which samples tie is read from it
    ordered = scores[order]
    new = np.ones(len(scores), dtype=bool)
    new[1:] = ~((ordered[1:] == ordered[:-1]) | (np.isnan(ordered[1:]) & np.isnan(ordered[:-1])))
    del ordered  # the AP ranks every sample of a joint of the data set: temporaries are freed early
    group = np.cumsum(new)
    group -= 1
    return order, group


def _mixed(labels: npt.NDArray[np.bool_], order: npt.NDArray[np.intp], group: npt.NDArray[np.int64]):
    counts = np.bincount(group)
    positives = np.bincount(group[labels[order]], minlength=len(counts))
    mixed = np.empty(len(labels), dtype=bool)
    mixed[order] = ((positives > 0) & (positives < counts))[group]
    return mixed


def mixed_ties(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Per sample, whether it ties in score with a sample of the other label (only then order matters).

    Shapes:
        scores: Float[S], labels: Bool[S] -> Bool[S]
    """
    if len(scores) < 2:
        return np.zeros(len(scores), dtype=bool)
    return _mixed(labels, *_tie_groups(scores))


def descending_order(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_], tie_order: TieOrder = "numpy1"
) -> npt.NDArray[np.intp]:
    """Sample indices by descending score; ties as documented in the module.

    Shapes:
        scores: Float[S], labels: Bool[S] -> Int[S]
    """
    if tie_order == "installed":
        return scores.argsort()[::-1]
    if tie_order != "numpy1":
        raise ValueError(f"tie_order must be 'numpy1' or 'installed', got {tie_order!r}")
    if len(scores) < 2:
        return np.arange(len(scores))[::-1]
    order, group = _tie_groups(scores)
    if not _mixed(labels, order, group).any():
        return order[::-1]  # equal scores carry equal labels: any order of them gives the same AP
    return _numpy1_order(scores, order, group)[::-1]


def numpy1_argsort(values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """``values.argsort()`` exactly as numpy 1.x computes it for float64 (NaN last), on any numpy.

    numpy sorts 16-bit integers and ``longdouble`` with the same generic introsort template numpy 1.x used
    for float64 (its SIMD sorts cover only 32/64-bit types). The scores' dense ranks (as uint16 when there
    are at most 65,536 distinct scores, else the scores widened to longdouble) compare exactly as the scores
    do, so that sort gives numpy 1.x's order in C. It is checked once per process against the
    reimplementation (:func:`reference_argsort`), which is used instead should a numpy ever sort them
    differently.

    Shapes:
        values: Float[S] -> Int[S]
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return np.arange(len(values))
    return _numpy1_order(values, *_tie_groups(values))


def _numpy1_order(
    values: npt.NDArray[np.float64], order: npt.NDArray[np.intp], group: npt.NDArray[np.int64]
) -> npt.NDArray[np.intp]:
    if not _c_sort_is_numpy1():
        return reference_argsort(values)
    return _c_sort(values, order, group)


def _c_sort(
    values: npt.NDArray[np.float64], order: npt.NDArray[np.intp], group: npt.NDArray[np.int64], wide: bool = False
) -> npt.NDArray[np.intp]:
    """The argsort of numpy 1.x of ``values`` in C; ``wide`` takes the longdouble key even when uint16 ranks fit."""
    if group[-1] < 2**16 and not wide:
        ranks = np.empty(len(values), dtype=np.uint16)
        ranks[order] = group
        return ranks.argsort(kind="quicksort")
    return values.astype(np.longdouble).argsort(kind="quicksort")


@functools.cache
def _c_sort_is_numpy1() -> bool:
    # a tie-heavy probe with NaNs, long enough for partitions, insertion runs and the stack; both key types
    probe = np.random.default_rng(0).integers(0, 7, 2000) / 7.0
    probe[::97] = np.nan
    expected = reference_argsort(probe)
    return all((_c_sort(probe, *_tie_groups(probe), wide=wide) == expected).all() for wide in (False, True))


def reference_argsort(values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """The float64 ``argsort`` of numpy 1.x reimplemented in Python (``npysort/quicksort.cpp``): the specification.

    Shapes:
        values: Float[S] -> Int[S]
    """
    v = np.asarray(values, dtype=np.float64).tolist()
    t = list(range(len(v)))
    nan = [x != x for x in v]
    if any(nan):  # numpy's less(): NaN sorts after every number; a key keeps the loops below simple
        big = max((x for x, n in zip(v, nan, strict=True) if not n), default=0.0)
        v = [big + 1.0 if n else x for x, n in zip(v, nan, strict=True)]
    if len(t) > 1:
        _introsort(v, t)
    return np.array(t, dtype=np.intp)


def _introsort(v: list[float], t: list[int]) -> None:
    stack: list[tuple[int, int, int]] = []
    left, right = 0, len(t) - 1
    depth = (len(t).bit_length() - 1) * 2
    while True:
        if depth < 0:
            _heapsort(v, t, left, right)
        else:
            while right - left > _SMALL:
                mid = left + ((right - left) >> 1)
                if v[t[mid]] < v[t[left]]:
                    t[mid], t[left] = t[left], t[mid]
                if v[t[right]] < v[t[mid]]:
                    t[right], t[mid] = t[mid], t[right]
                if v[t[mid]] < v[t[left]]:
                    t[mid], t[left] = t[left], t[mid]
                pivot = v[t[mid]]
                i, j = left, right - 1
                t[mid], t[j] = t[j], t[mid]
                while True:
                    i += 1
                    while v[t[i]] < pivot:
                        i += 1
                    j -= 1
                    while pivot < v[t[j]]:
                        j -= 1
                    if i >= j:
                        break
                    t[i], t[j] = t[j], t[i]
                t[i], t[right - 1] = t[right - 1], t[i]
                depth -= 1
                if i - left < right - i:  # numpy pushes the larger partition
                    stack.append((i + 1, right, depth))
                    right = i - 1
                else:
                    stack.append((left, i - 1, depth))
                    left = i + 1
            for i in range(left + 1, right + 1):
                index, value, j = t[i], v[t[i]], i
                while j > left and value < v[t[j - 1]]:
                    t[j] = t[j - 1]
                    j -= 1
                t[j] = index
        if not stack:
            return
        left, right, depth = stack.pop()


def _heapsort(v: list[float], t: list[int], left: int, right: int) -> None:
    # numpy's aheapsort_ on t[left..right], with its 1-based sift-down
    a = t[left : right + 1]
    n = len(a)
    a.insert(0, 0)
    for start in range(n >> 1, 0, -1):
        _sift(v, a, start, n)
    for end in range(n, 1, -1):
        a[1], a[end] = a[end], a[1]
        _sift(v, a, 1, end - 1)
    t[left : right + 1] = a[1:]


def _sift(v: list[float], a: list[int], i: int, n: int) -> None:
    tmp = a[i]
    j = i * 2
    while j <= n:
        if j < n and v[a[j]] < v[a[j + 1]]:
            j += 1
        if v[tmp] < v[a[j]]:
            a[i] = a[j]
            i = j
            j += j
        else:
            break
    a[i] = tmp
