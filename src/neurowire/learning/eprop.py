"""The e-prop trainer: compile a network, compute gradients, apply Adam, rewire, fit.

See :mod:`.forward` for the pinned convention, :mod:`.online` for the per-synapse reference and
:mod:`.factorized` for the fast path; both compute the same gradient
(e-prop, Bellec et al. 2020).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..network import Network, Population, Projection
from ..structural.base import StructuralRule
from ..structural.log import RewiringLog
from ..structural.runner import RuleRunner
from . import distributed as _dist
from . import gradient_pass as _pass
from .compiled import EPropNetwork, PlasticProjection, compile_network
from .engine import EPropEngine, check_engine, resolve_engine
from .forward import check_vectorised
from .gradient_pass import BatchOutput
from .inference import Inference, batch_metrics
from .loop import Callback, TrainingLoop
from .losses import Loss, RateRegularizer, check_readout, get_loss
from .optim import Adam
from .rates import BatchRates
from .rule_host import RuleHost
from .state import load_trainer_state, trainer_state
from .undo import BatchUndo

if TYPE_CHECKING:
    from .l1_selection import L1Selection

METHODS = ("factorized", "online")
FEEDBACK = ("symmetric", "random")


class EProp(Inference, RuleHost):
    """Train a recurrent spiking network with e-prop (Bellec et al. 2020).

    The network is ``SpikeSource`` -> hidden ``LIF``/``ALIF`` populations (sparse or ``Dense()``
    input and recurrent projections) -> one ``LeakyIntegrator`` (``Dense()`` projections); see
    :mod:`neurowire.learning.forward` for the exact equations. Weights are updated once per
    batch with the summed gradient ``dE/dW``.

    Args:
        net: the declared network; its tensors are moved to ``device``.
        output: the readout population (or its name).
        loss: ``"sce"`` (labels int ``[B]``) or ``"mse"`` (targets ``[B, T, n_out]``), or a Loss.
        readout: how ``y`` becomes a prediction: ``"sum"``, ``"avg"``, ``"max"`` or ``"last"``.
        optimizer: default ``Adam()``; its moments live in each projection's store.
        feedback: ``"symmetric"`` (``B = W_out^T``) or ``"random"`` (fixed ``N(0, 1)``, seeded).
        regularization: a :class:`RateRegularizer` or None.
        rewiring: ``{projection or name: StructuralRule}`` for sparse input/recurrent
            projections; each rule's ``update(view, ctx)`` runs after every optimiser step
            (``ctx.step`` counts batches, ``ctx.t`` the trained model time [ms]).
        method: ``"factorized"`` (fast) or ``"online"`` (per-synapse reference).
        chunk_size: trials simulated at once; None picks it from a memory budget (1 GiB on the
            CPU, 256 MiB there for the factorised method without a regulariser, half the free
            memory on a GPU). Results do not depend on it.
        seed: seeds the random feedback, shuffling and rewiring (default ``net.seed``).
        device: default the device of the network's tensors.
        step_threads: CPU intra-op threads inside the per-step Python loops (their ops are
            small; with shared cores, multi-threaded small ops stall); None leaves
            ``torch.get_num_threads()``. Large vectorised ops always use the global setting.
        engine: for ``method="factorized"``: ``"torch"`` (pure PyTorch, any device; the
            reference), ``"native"`` (numba kernels for the forward pass, the backward
            recursions and the spike-event products; CPU only, equal to the torch engine up to
            rounding), ``"triton"`` (Triton kernels for the same steps; CUDA, or the CPU in
            Triton's interpreter with ``TRITON_INTERPRET=1``) or ``"auto"`` (native on the CPU
            when numba is installed, else torch; torch on CUDA until a GPU run has verified
            the triton engine), resolved once (:func:`~.engine.resolve_engine`); or an
            :class:`~.engine.EPropEngine` object.
        distributed: data-parallel training over the default ``torch.distributed`` process
            group (:mod:`neurowire.learning.distributed`; start the workers with torchrun and
            call its ``init_process_group()`` first). None: whenever a group with more than one
            rank is initialised; True: require one; False: never. Every rank passes the same
            global batches to :meth:`train_step`, :meth:`fit`, :meth:`evaluate` and
            :meth:`compute_gradients` (collectives: all ranks call them, in the same order) and
            simulates only its shard (:func:`~neurowire.learning.distributed.shard`); the sums
            are reduced so that every rank holds the same bits, and the same seed then gives the
            same Adam steps and rewiring on every rank. Results equal a one-process run with the
            same global batches up to rounding. Construction checks that all ranks start from
            the same state. :meth:`scores`, :meth:`predict` and the other forward helpers stay
            local.
    """

    def __init__(
        self,
        net: Network,
        output: Population | str,
        loss: str | Loss = "sce",
        readout: str = "sum",
        optimizer: Adam | None = None,
        feedback: str = "symmetric",
        regularization: RateRegularizer | None = None,
        rewiring: Mapping[Projection | str, StructuralRule] | None = None,
        method: str = "factorized",
        chunk_size: int | None = None,
        seed: int | None = None,
        device: str | torch.device | None = None,
        step_threads: int | None = 1,
        engine: str | EPropEngine = "auto",
        distributed: bool | None = None,
    ) -> None:
        self.loss = get_loss(loss)
        self.readout = check_readout(readout)
        _check_choice("method", method, METHODS)
        _check_choice("feedback", feedback, FEEDBACK)
        check_engine(engine)
        self.optimizer = _check_optimizer(optimizer)
        self.regularization = _check_regularization(regularization)
        _check_count("chunk_size", chunk_size)
        _check_count("step_threads", step_threads)
        self.method, self.feedback, self.chunk_size = method, feedback, chunk_size
        #: this process's rank and the number of ranks a global batch is split over
        self.rank, self.world_size = _dist.placement(distributed)
        self.network: EPropNetwork = compile_network(net, output, device, step_threads)
        self.net = net
        self.seed = net.seed if seed is None else int(seed)
        self.device = self.network.device
        self._engine = resolve_engine(engine, self.device)
        self._engine.prepare(self.network)
        if method == "online":
            check_vectorised(self.network.hidden)
        self.feedback_matrix = _feedback_matrix(feedback, self.network, self.seed)
        self.step_count = 0
        self.stop_training = False
        #: the :class:`~neurowire.learning.l1_selection.L1Selection` that resolved the
        #: ``DeepR(l1="auto")`` rules (:func:`~neurowire.learning.select_l1`, which :meth:`fit`
        #: runs when needed), or None
        self.l1_selection: L1Selection | None = None
        self.rewiring_log = RewiringLog()
        self._trained_ms = 0.0
        self._rules = _check_rewiring(self.network, rewiring or {})
        sparse = [p.name for p in self.network.plastic if p.sparse]
        #: the rules' contexts and all-or-nothing calls (the Simulator's runner too)
        self.rule_runner = RuleRunner(
            [(spec.name, rule) for spec, rule in self._rules],
            self.seed,
            self.device,
            self._make_view,
            self.rewiring_log,
            known=sparse,
        )
        #: wall-clock seconds: gradients (forward + backward), optimiser, rules (both hooks),
        #: undo (the copy that lets a failed batch of a rewired trainer be undone);
        #: within gradients (factorised method): forward (input events, hidden layer, readout,
        #: loss), backward (learning signal, recursions and, on the native engine, the spike
        #: products fused with them) and products (the torch engine's spike products)
        self.timers = dict.fromkeys(
            ("gradients", "forward", "backward", "products", "optimizer", "rules", "undo"), 0.0
        )
        #: the last batch's spike counts, turned into rates only when a rule reads them
        self._rates = BatchRates.none()
        self._batch_trials = 1
        for name, param in self._parameters().items():
            self.optimizer.attach(name, param)
        self.rule_runner.setup(self._clock())
        net._bind("EProp")
        if self.world_size > 1:
            _dist.check_consistent(self)

    def __repr__(self) -> str:
        n = self.network
        return (
            f"EProp(method={self.method!r}, engine={self.engine!r}, loss={self.loss.name!r}, "
            f"readout={self.readout!r}, "
            f"feedback={self.feedback!r}, hidden={n.hidden.n}, inputs={n.n_in}, "
            f"outputs={n.n_out})"
        )

    @property
    def engine(self) -> str:
        """The name of the engine computing the factorised gradients (``"torch"``,
        ``"native"``, ``"triton"``, or a given engine's own)."""
        return self._engine.name

    # ------------------------------------------------------------------ setup helpers
    def _parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for spec in self.network.plastic + self.network.outputs:
            proj = spec.projection
            params[spec.name] = proj.synapses if proj.sparse else proj.weight
        params[self.network.bias_name] = self.network.bias
        return params

    def compute_gradients(self, spikes: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """``dE/dW`` summed over the batch, before any L1 term and the optimiser.

        Args:
            spikes: ``[B, T, n_in]`` bool (or 0/1).
            labels: int ``[B]`` for ``"sce"``; float ``[B, T, n_out]`` for ``"mse"``.

        Returns:
            ``{projection name: [n_pre, n_post]}`` (0 where no synapse; ``[pre, post]`` layout,
            the transpose of the equations' ``W_ji``) for input, recurrent and output
            projections, plus ``{"<output>.bias": [n_out]}``.
        """
        with _pass.thread_scope(self, spikes):
            out = _pass.batch_gradients(self, *_pass.prepare(self, spikes, labels))
        dense = {}
        for spec in self.network.plastic + self.network.outputs:
            g = out.grads[spec.name]
            if spec.sparse:
                s = spec.projection.synapses
                full = torch.zeros(s.n_pre, s.n_post, dtype=g.dtype, device=g.device)
                pre, post = s.coo()
                full[pre, post] = g.flatten()[s.csr().slot]
                g = full
            dense[spec.name] = g
        dense[self.network.bias_name] = out.grads[self.network.bias_name]
        return dense

    # ------------------------------------------------------------------ training
    def train_step(self, spikes: Tensor, labels: Tensor) -> dict[str, float]:
        """One batch: gradients, one optimiser step, then the rewiring rules.

        Returns the batch's ``loss`` (``E / (B T)``), ``accuracy`` (classification), ``spikes``
        (hidden spikes in total), ``trials`` and ``steps``. Distributed: ``spikes [B, T, n_in]``
        and ``labels`` are the global batch, the same on every rank, and the metrics are the
        global batch's.

        With structural rules a batch is all or nothing: if anything raises after the gradients
        (a rule's hook or update, the optimiser, Ctrl-C), the trainer is put back exactly as
        before the call (weights, connectivity, Adam state and step, counters, the rules'
        generators and log; :class:`~neurowire.learning.undo.BatchUndo`, timed as ``undo``)
        and the exception propagates. Without rules nothing can fail there but an interrupt,
        and no copy is taken.
        """
        params = self._parameters()
        with _pass.thread_scope(self, spikes):
            tic = time.perf_counter()
            x, tgt = _pass.prepare(self, spikes, labels)
            out = _pass.batch_gradients(self, x, tgt)
            tic = self._timed("gradients", tic)
            undo = BatchUndo(self) if self._rules else None
            tic = self._timed("undo", tic)
            try:
                self._batch_trials = out.trials
                if self._rules:
                    self._rates = self._batch_rates(out)
                grads = self._adjust_gradients(out.grads)
                tic = self._timed("rules", tic)
                self.optimizer.step({name: (params[name], g) for name, g in grads.items()})
                tic = self._timed("optimizer", tic)
                self.step_count += 1
                self._trained_ms += out.steps * self.net.dt
                self._rewire()
                self._timed("rules", tic)
            except BaseException:
                if undo is not None:
                    undo.restore()
                raise
        return self._metrics(out, tgt)

    def _timed(self, key: str, tic: float) -> float:
        toc = time.perf_counter()
        self.timers[key] += toc - tic
        return toc

    def _batch_rates(self, out: BatchOutput) -> BatchRates:
        """The mean rates of every input and hidden neuron over the global batch, computed when
        first read (distributed: input counts of each rank's shard, summed exactly as integers
        here, on every rank alike)."""
        counts = out.inputs
        if self.world_size > 1:
            (counts,) = _dist.sum_identical([counts])
        per_s = 1000.0 / (out.trials * out.steps * self.net.dt)
        spans = {pop.name: self.network.hidden.span(pop) for pop in self.network.hidden.populations}
        return BatchRates(
            self.network.input.name, counts, out.spikes, spans, per_s, self.network.dtype
        )

    def _metrics(self, out: BatchOutput, tgt: Tensor) -> dict[str, float]:
        return batch_metrics(
            self.loss, out.loss, out.scores, out.spikes, out.trials, out.steps, tgt
        )

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything that training changes, as tensors and plain data (for checkpoints):
        every projection (stores with their connectivity and Adam moments, dense weights),
        the readout bias, the optimiser, the random feedback, every rule's own state and
        random generators, the rewiring log and the batch counters."""
        return trainer_state(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into this trainer, built on the same network.

        Raises ``ValueError`` naming the first mismatch (projection names, shapes, rules).
        """
        load_trainer_state(self, state)

    # ------------------------------------------------------------------ loops
    def evaluate(self, data, batch_size: int = 64, progress: bool = False) -> dict[str, float]:
        """Loss, accuracy and firing rate on ``data`` without changing anything.

        ``data``: a :class:`SpikeDataset`, :class:`Batches` or an iterable of
        ``(spikes, labels)`` batches. Distributed: every rank passes the same ``data`` and
        returns the whole data's metrics (:meth:`evaluate_step`).
        """
        return TrainingLoop(self).evaluate(data, batch_size=batch_size)

    def fit(
        self,
        train,
        epochs: int,
        validation=None,
        callbacks: Iterable[Callback] | None = None,
        progress: bool = True,
        batch_size: int = 32,
        initial_epoch: int = 0,
    ) -> list[dict[str, float]]:
        """Train for ``epochs`` passes over ``train``; returns one metrics dict per epoch
        (``epoch``, ``loss``, ``accuracy``, ``time_s``, ``spikes_per_neuron_per_s``, ``trials``
        and, with ``validation``, the same prefixed ``val_``).

        ``train``: a :class:`SpikeDataset`, :class:`Batches` or re-iterable of ``(spikes,
        labels)`` batches; ``callbacks``: :class:`~neurowire.learning.loop.Callback` objects
        (a :class:`~neurowire.learning.checkpoint.Checkpointer` saves checkpoints);
        ``initial_epoch``: epochs already trained (after a resume). Resolves
        ``DeepR(l1="auto")`` rules first (:attr:`l1_selection`). See
        :meth:`TrainingLoop.fit <neurowire.learning.loop.TrainingLoop.fit>` for every argument
        and the distributed case.
        """
        return TrainingLoop(self).fit(
            train, epochs, validation, callbacks, progress, batch_size, initial_epoch
        )


# ---------------------------------------------------------------------- helpers
def _check_rewiring(
    network: EPropNetwork, rewiring: Any
) -> list[tuple[PlasticProjection, StructuralRule]]:
    """``rewiring=`` as ``(projection spec, rule)`` pairs, checked."""
    if not isinstance(rewiring, Mapping):
        raise TypeError(f"rewiring must be a dict {{projection: rule}}, got {rewiring!r}")
    by_name = {spec.name: spec for spec in network.plastic}
    rules = []
    for key, rule in rewiring.items():
        name = key if isinstance(key, str) else getattr(key, "name", None)
        if name not in by_name or (
            not isinstance(key, str) and by_name[name].projection is not key
        ):
            raise ValueError(
                f"rewiring: {key!r} is not an input or recurrent projection of this "
                f"network; known: {sorted(by_name)}"
            )
        if not by_name[name].sparse:
            raise ValueError(f"rewiring: projection {name!r} is dense; rules need a store")
        if not isinstance(rule, StructuralRule):
            raise TypeError(
                f"rewiring[{name!r}] must be a StructuralRule, got {type(rule).__name__}"
            )
        rules.append((by_name[name], rule))
    return rules


def _check_optimizer(optimizer: Any) -> Adam:
    if optimizer is None:
        return Adam()
    if not isinstance(optimizer, Adam):
        raise TypeError(f"optimizer must be an Adam, got {type(optimizer).__name__}")
    return optimizer


def _check_regularization(regularization: Any) -> RateRegularizer | None:
    if regularization is not None and not isinstance(regularization, RateRegularizer):
        raise TypeError(
            f"regularization must be a RateRegularizer or None, got {type(regularization).__name__}"
        )
    return regularization


def _check_count(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be None or an int >= 1, got {value!r}")


def _feedback_matrix(feedback: str, network: EPropNetwork, seed: int) -> Tensor | None:
    """The fixed random feedback ``[n_hidden, n_out]`` (``N(0, 1)``, seeded), or None."""
    if feedback != "random":
        return None
    gen = torch.Generator().manual_seed(seed * 7919 + 17)
    b = torch.randn(network.hidden.n, network.n_out, generator=gen, dtype=network.dtype)
    return b.to(network.device)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
