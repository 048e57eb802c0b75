"""All-or-nothing rule calls: a rule that raises leaves nothing half-done.

A structural rule changes its stores through several calls (``view.remove``, then
``view.add``, ...), and each call logs as it goes. If the rule raises in between, the store is
left half-rewired and the :class:`~neurowire.RewiringLog` holds events of a call that never
finished (and no per-call record for it). :func:`rule_transaction` makes the call atomic::

    with rule_transaction([proj.synapses], sim.rewiring_log):
        rule.update(view, ctx)
        sim.rewiring_log.record_call(...)

If the block raises, every listed store and the log are put back exactly as they were at
entry, then the exception propagates unchanged; so store, per-call log and event log agree,
as before the call. Stores not listed are not restored: list every store the rule may change
(a coupled rule's partners too). Random generators are not rewound.

A rule whose call is :meth:`~.base.StructuralRule.atomic` (it raises only before it changes
anything, then makes its change in one uninterruptible step) needs no copy of its stores; the
:class:`~.runner.RuleRunner` then protects only the log. Such a change is kept if an
asynchronous ``KeyboardInterrupt`` arrives after it and before the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..store import RaggedSynapses, StoreSnapshot
from .log import RewiringLog


class Transaction:
    """The stores a rule call has touched so far, each saved as it was at entry."""

    def __init__(self, log: RewiringLog | None) -> None:
        self._saved: dict[int, StoreSnapshot] = {}
        self.log = log
        self.mark = log.mark() if log is not None else None

    def protect(self, store: RaggedSynapses) -> None:
        """Save ``store`` (once per transaction) so that a failure restores it; call before
        the block changes it (rule views do this when they are handed out)."""
        if id(store) not in self._saved:
            self._saved[id(store)] = StoreSnapshot(store)

    def rollback(self) -> None:
        for snapshot in self._saved.values():
            snapshot.restore()
        if self.log is not None:
            self.log.rollback(self.mark)


@contextmanager
def rule_transaction(
    stores: Sequence[RaggedSynapses], log: RewiringLog | None
) -> Iterator[Transaction]:
    """Snapshot ``stores`` and ``log``; if the block raises, restore both and re-raise.

    Args:
        stores: stores the block may change (duplicates are fine); more can be added inside
            the block with ``tx.protect(store)`` on the yielded :class:`Transaction`.
        log: the log the block records into, or None.

    On entry a :class:`~neurowire.store.StoreSnapshot` of each store (copies of ``ind``,
    ``row_length`` and every variable) and the log's :meth:`~neurowire.RewiringLog.mark` are
    taken. If the block raises anything (``KeyboardInterrupt`` too), each store is restored
    in place with :meth:`~neurowire.store.StoreSnapshot.restore` (the same tensor objects,
    so views held elsewhere stay valid; ``version`` advances, so caches rebuild), variables
    registered inside the block are dropped, the log is rolled back to the mark (per-call
    records, totals and events alike), and the original exception is re-raised unchanged.
    A block that completes keeps all its changes. Protecting costs one copy of the store.
    """
    tx = Transaction(log)
    for store in stores:
        tx.protect(store)
    try:
        yield tx
    except BaseException:
        tx.rollback()
        raise
