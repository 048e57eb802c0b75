"""Atomic operations on int64 array elements inside numba kernels (LLVM atomics).

numba has no CPU atomics; these intrinsics emit LLVM's atomic load, store, compare-exchange and
fetch-add on ``arr[i]`` for a C-contiguous 1-D int64 array. The native engine's block and its
helper thread (:mod:`.engine`, stochastic sources drawn ahead) coordinate through them: a value
published with :func:`store_release` after other writes is seen by :func:`load_acquire`
together with those writes.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _pointer(context, builder, arrty, arr, index):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [index])


def _check(arr) -> None:
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        raise TypeError(f"atomics need a 1-D int64 array, got {arr}")


@intrinsic
def load_acquire(typingctx, arr, index):
    """``arr[index]`` read with acquire ordering."""
    _check(arr)

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, index), codegen


@intrinsic
def store_release(typingctx, arr, index, value):
    """``arr[index] = value`` with release ordering."""
    _check(arr)

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()

    return types.none(arr, index, value), codegen


@intrinsic
def compare_exchange(typingctx, arr, index, expected, value):
    """If ``arr[index] == expected`` set it to ``value``; returns whether it did (seq_cst)."""
    _check(arr)

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
        old = context.cast(builder, args[2], sig.args[2], types.int64)
        new = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(ptr, old, new, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return types.boolean(arr, index, expected, value), codegen


@intrinsic
def fetch_add(typingctx, arr, index, value):
    """``arr[index] += value``; returns the value before (seq_cst)."""
    _check(arr)

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return types.int64(arr, index, value), codegen


__all__ = ["compare_exchange", "fetch_add", "load_acquire", "store_release"]
