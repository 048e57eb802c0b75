"""Drawing the spikes of pure sources ahead, on a helper thread, while a native block runs.

A step of the networks the native engine is for takes microseconds, less than numba's thread
pools take to start a parallel loop, so the step loop runs on one thread. The spikes of
``PoissonSource``-like populations (:func:`.codegen.pure_source`) do not depend on the step
before them: one helper thread can draw them for a whole block ahead, when a core looks free
(:func:`spare_core`) and the block draws enough numbers (:data:`AHEAD_MIN_DRAWS`) to pay for the
hand-over. Results never depend on it (:func:`.delivery.take_spikes`).
"""

from __future__ import annotations

import os
import queue
import threading
import time

import torch

#: the helper thread draws a block's source spikes ahead only from this many numbers on and up
#: to this many (the flags' buffer). In the step the numbers cost about 0.3-0.8 ns each, so the
#: helper saves at most that, and on this project's 2 shared cores it did not pay below a few
#: million numbers per block (scale 4: 0.8 M per 20 ms block); about 1 ms of drawing per block
AHEAD_MIN_DRAWS = 1 << 21
AHEAD_MAX_DRAWS = 1 << 26


def resolve_threads(threads: int | None) -> int:
    """Threads a native block may use: ``threads``, or by default as many as PyTorch uses
    (``torch.get_num_threads()``, which ``torch.set_num_threads`` limits, as for the e-prop
    trainer), at most the CPUs this process may run on."""
    if threads is None:
        threads = torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1 or None, got {threads!r}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(threads, cpus or 1))


_LOAD: list[float] = [-1.0, 0.0]  # when read, 1-minute load average


def spare_core(threads: int) -> bool:
    """Whether a core looks free for the helper: the 1-minute load average (this process's
    own thread included) below ``threads - 0.5``. On cores shared with other work the helper
    would only take time from the block, so it stays idle. Read at most once a second."""
    if not hasattr(os, "getloadavg"):
        return True
    now = time.monotonic()
    if now - _LOAD[0] > 1.0:
        _LOAD[0], _LOAD[1] = now, os.getloadavg()[0]
    return _LOAD[1] < threads - 0.5


class _Helper:
    """One daemon thread that runs kernels handed to it (the sources drawn ahead).

    A kernel it runs only writes buffers the block reads after an acquire (see
    :func:`.delivery.take_spikes`); the block never waits on it for long, so a helper that is
    descheduled, late or failing costs time, never results.
    """

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="neurowire-native", daemon=True)
        self.thread.start()

    def submit(self, fn, args) -> None:
        self.jobs.put((fn, args))

    def _loop(self) -> None:
        torch.set_flush_denormal(True)  # as the simulating thread (neurowire.denormals)
        while True:
            fn, args = self.jobs.get()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001, S112 - the block draws what the helper did not
                continue


_HELPER: _Helper | None = None
_HELPER_LOCK = threading.Lock()


def helper() -> _Helper:
    global _HELPER
    with _HELPER_LOCK:
        if _HELPER is None or not _HELPER.thread.is_alive():
            _HELPER = _Helper()
        return _HELPER
