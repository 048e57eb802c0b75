"""The e-prop trainer: compile a network, compute gradients, apply Adam, rewire, fit.

See :mod:`.forward` for the pinned convention, :mod:`.online` for the per-synapse reference and
:mod:`.factorized` for the fast path; both compute the same gradient
(reference/algorithms.md §1-2).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..network import Network, Population, Projection
from ..structural.base import StructuralRule
from ..structural.log import RewiringLog
from ..structural.runner import Clock, RuleRunner
from ..structural.view import SynapseView
from . import distributed as _dist
from . import l1_selection as _l1
from .compiled import EPropNetwork, PlasticProjection, compile_network
from .engine import EPropEngine, check_engine, resolve_engine
from .factorized import ChunkResult, factorized_chunk
from .forward import check_vectorised, hot_loop
from .loop import EpochTotals, call_hooks, iterate_batches
from .losses import Loss, RateRegularizer, check_readout, get_loss, readout_value
from .online import online_chunk
from .optim import Adam
from .rates import BatchRates
from .tables import gather_weights
from .undo import BatchUndo

METHODS = ("factorized", "online")
FEEDBACK = ("symmetric", "random")

#: default working-memory budget per chunk of trials [bytes] on the CPU
CPU_CHUNK_BUDGET = 1 << 30

#: the budget on the CPU for the factorised method without a regulariser [bytes]: a split batch
#: then costs next to nothing more, and the per-neuron arrays a chunk keeps (``[T, B, N]``)
#: are most of a sparse network's memory
NEURON_CHUNK_BUDGET = 1 << 28

#: below this many elements per [T, B, N] tensor, a whole batch runs with ``step_threads``
SMALL_WORK = 1 << 20


@dataclass(eq=False)
class BatchOutput:
    """Result of one batch: gradients (sparse projections in slot layout ``[n_pre, capacity]``),
    the summed loss ``E``, readout summaries ``[B, K]``, spike counts ``[N]``."""

    grads: dict[str, Tensor]
    loss: float
    scores: Tensor
    spikes: Tensor
    trials: int
    steps: int
    #: input spike counts ``[n_in]`` (int64) of this process's trials
    inputs: Tensor | None = None


class EProp:
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
        if optimizer is None:
            optimizer = Adam()
        if not isinstance(optimizer, Adam):
            raise TypeError(f"optimizer must be an Adam, got {type(optimizer).__name__}")
        if regularization is not None and not isinstance(regularization, RateRegularizer):
            raise TypeError(
                f"regularization must be a RateRegularizer or None, got "
                f"{type(regularization).__name__}"
            )
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"chunk_size must be None or an int >= 1, got {chunk_size!r}")
        self.method, self.feedback, self.chunk_size = method, feedback, chunk_size
        self.optimizer, self.regularization = optimizer, regularization
        if step_threads is not None and (
            isinstance(step_threads, bool) or not isinstance(step_threads, int) or step_threads < 1
        ):
            raise ValueError(f"step_threads must be None or an int >= 1, got {step_threads!r}")
        if distributed is not None and not isinstance(distributed, bool):
            raise TypeError(f"distributed must be None, True or False, got {distributed!r}")
        if distributed and not _dist.is_active():
            raise ValueError(
                "distributed=True needs an initialised torch.distributed process group with more "
                "than one rank: launch with torchrun and call "
                "neurowire.learning.distributed.init_process_group() first"
            )
        #: this process's rank and the number of ranks a global batch is split over
        self.rank, self.world_size = 0, 1
        if distributed is not False and _dist.is_active():
            self.rank, self.world_size = _dist.rank(), _dist.world_size()
        self.network: EPropNetwork = compile_network(net, output, device, step_threads)
        self.net = net
        self.seed = net.seed if seed is None else int(seed)
        self.device = self.network.device
        self._engine = resolve_engine(engine, self.device)
        self._engine.prepare(self.network)
        if method == "online":
            check_vectorised(self.network.hidden)
        gen = torch.Generator().manual_seed(self.seed * 7919 + 17)
        self.feedback_matrix: Tensor | None = None
        if feedback == "random":
            self.feedback_matrix = torch.randn(
                self.network.hidden.n, self.network.n_out, generator=gen, dtype=net.dtype
            ).to(self.device)
        self.step_count = 0
        self.stop_training = False
        #: the :class:`~neurowire.learning.l1_selection.L1Selection` that resolved
        #: ``DeepR(l1="auto")`` rules in :meth:`fit`, or None
        self.l1_selection: _l1.L1Selection | None = None
        self.rewiring_log = RewiringLog()
        self._trained_ms = 0.0
        self._rules = self._check_rewiring(rewiring or {})
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
    def _check_rewiring(self, rewiring) -> list[tuple[PlasticProjection, StructuralRule]]:
        if not isinstance(rewiring, Mapping):
            raise TypeError(f"rewiring must be a dict {{projection: rule}}, got {rewiring!r}")
        by_name = {spec.name: spec for spec in self.network.plastic}
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

    def _parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for spec in self.network.plastic + self.network.outputs:
            proj = spec.projection
            params[spec.name] = proj.synapses if proj.sparse else proj.weight
        params[self.network.bias_name] = self.network.bias
        return params

    def _make_view(self, name: str, generator: torch.Generator, log_events: bool) -> SynapseView:
        """A rule's view of a sparse plastic projection after the last batch.

        Neuron state: ``rate_hz`` ``[1, n]``, each neuron's mean firing rate over the last
        training batch [Hz] (zeros before the first batch).
        """
        proj = self.net.projections[name]
        return SynapseView(
            proj.synapses,
            pre_state=self._population_state(proj.pre),
            post_state=self._population_state(proj.post),
            pre_grid=proj.pre.grid,
            post_grid=proj.post.grid,
            log=self.rewiring_log,
            step=self.step_count,
            t_ms=self._trained_ms,
            log_events=log_events,
            generator=generator,
        )

    def _population_state(self, pop: Population) -> dict[str, Tensor]:
        rate = self._rates.of(pop.name)
        if rate is None:
            rate = torch.zeros(pop.n, dtype=self.network.dtype, device=self.device)
        return {"rate_hz": rate[None, :]}

    def _clock(self) -> Clock:
        """The rules' clock: ``step`` counts batches, ``t_ms`` the trained model time [ms],
        ``batch_size`` the trials of the last batch, ``learning_rate`` the optimiser's."""
        return Clock(
            self.step_count,
            self._trained_ms,
            self.net.dt,
            self._batch_trials,
            self.optimizer.lr,
        )

    # ------------------------------------------------------------------ input checks
    def _check_spikes(self, spikes: Any) -> Tensor:
        """Validate ``spikes [B, T, n_in]``; return them as a contiguous bool tensor."""
        if isinstance(spikes, np.ndarray):
            spikes = torch.from_numpy(spikes)
        if not isinstance(spikes, Tensor):
            raise TypeError(f"spikes must be a tensor [B, T, n_in], got {type(spikes).__name__}")
        n_in = self.network.n_in
        if spikes.dim() != 3:
            raise ValueError(
                f"spikes must have shape [B, T, n_in] (3-D), got {tuple(spikes.shape)}"
            )
        if spikes.shape[2] != n_in:
            raise ValueError(
                f"spikes have {spikes.shape[2]} channels but input population "
                f"{self.network.input.name!r} has {n_in} neurons"
            )
        if spikes.shape[0] < 1 or spikes.shape[1] < 1:
            raise ValueError(f"spikes need B >= 1 trials and T >= 1 steps, got {spikes.shape}")
        if spikes.is_complex():
            raise TypeError(f"spikes must be bool or 0/1 numbers, got dtype {spikes.dtype}")
        if spikes.dtype != torch.bool:
            if spikes.is_floating_point() and bool(torch.isnan(spikes).any()):
                raise ValueError("spikes contain NaN")
            if bool(((spikes != 0) & (spikes != 1)).any()):
                raise ValueError("spikes must be bool or 0/1 numbers; got other values")
            spikes = spikes != 0
        return spikes.to(self.device).contiguous()

    def _prepare(self, spikes: Any, labels: Any) -> tuple[Tensor, Tensor]:
        x = self._check_spikes(spikes)
        batch, steps, _ = x.shape
        if labels is None:
            raise ValueError("labels (or targets) are required")
        tgt = self.loss.prepare(
            labels, batch, steps, self.network.n_out, self.device, self.network.dtype
        )
        return x, tgt

    def _threads(self, spikes: Any):
        """Thread scope of a batch: small problems run entirely with ``step_threads``."""
        shape = getattr(spikes, "shape", ())
        batch, steps = (shape[0], shape[1]) if len(shape) == 3 else (1, 1)
        size = min(batch, self.chunk_size or batch) * steps * self.network.hidden.n
        return hot_loop(self.network.step_threads if size < SMALL_WORK else None)

    # ------------------------------------------------------------------ chunking
    def _chunk_size(self, steps: int) -> int:
        return self.chunk_size or self._auto_chunk(steps)

    def _chunks(self, batch: int, size: int) -> list[slice]:
        return [slice(s, min(batch, s + size)) for s in range(0, batch, size)]

    def _auto_chunk(self, steps: int) -> int:
        n = self.network
        item = torch.finfo(n.dtype).bits // 8
        if self.method == "online":
            synapses = sum(
                p.n_pre * (p.projection.synapses.capacity if p.sparse else p.n_post)
                for p in n.plastic
            )
            per_trial = 5 * synapses * item
        else:
            per_trial = self._engine.trial_bytes(n, steps)
        if self.device.type == "cuda":
            budget = torch.cuda.mem_get_info(self.device)[0] // 2
        elif self.method == "factorized" and self.regularization is None:
            budget = NEURON_CHUNK_BUDGET  # with a regulariser, a split costs Lambda = 1's pass
        else:
            budget = CPU_CHUNK_BUDGET
        return max(1, budget // max(per_trial, 1))

    # ------------------------------------------------------------------ gradients
    def _run(self, x: Tensor, tgt: Tensor) -> BatchOutput:
        """Gradients of the global batch ``x [B, T, n_in]``: this rank's shard in chunks, the
        chunks' sums added, then (several ranks) summed over the ranks, then the regulariser's
        unit part scaled by ``R`` from the whole batch's spike counts. The regulariser is folded
        into the backward pass when each rank's shard is one chunk."""
        n = self.network
        batch, steps, _ = x.shape
        w = gather_weights(n, self.feedback_matrix)
        own = _dist.shard(batch, self.rank, self.world_size)
        size = self._chunk_size(steps)
        chunks = [
            slice(own.start + c.start, own.start + c.stop)
            for c in self._chunks(own.stop - own.start, size)
        ]
        # the regulariser folds into the backward pass when every rank's shard is one chunk:
        # the whole batch's spike counts are then summed between forward and backward passes
        fold = -(-batch // self.world_size) <= size
        whole_batch = None
        if self.world_size > 1 and fold:

            def whole_batch(counts: Tensor) -> tuple[Tensor, int]:
                return _dist.sum_identical([counts])[0], batch

        total: ChunkResult | None = None
        scores = []
        for sl in chunks:
            xs, ts = x[sl], self.loss.select(tgt, sl)
            if self.method == "online":
                res = online_chunk(n, w, xs, ts, self.loss, self.regularization)
            else:
                res = factorized_chunk(
                    n,
                    w,
                    xs,
                    ts,
                    self.loss,
                    self.regularization,
                    fold,
                    self._engine,
                    self.timers,
                    whole_batch,
                )
            scores.append(readout_value(res.y, self.readout))
            res.y = None
            total = res if total is None else _add(total, res)
        score = torch.cat(scores)
        if self.world_size > 1:
            task, unit = sorted(total.task), sorted(total.unit)
            summed = _dist.sum_identical(
                [total.task[k] for k in task]
                + [total.unit[k] for k in unit]
                + [total.spikes, total.loss, _dist.spread_rows(score, own, batch)]
            )
            total.task = dict(zip(task, summed[: len(task)], strict=True))
            total.unit = dict(zip(unit, summed[len(task) : len(task) + len(unit)], strict=True))
            total.spikes, total.loss, score = summed[-3:]
        grads = total.task
        if total.unit:
            r = self.regularization.factor(total.spikes, batch, steps, self.net.dt)
            for pw in w.inputs + w.recurrent:
                name, spec = pw.spec.name, pw.spec
                if pw.dense is not None:
                    r_post = r[spec.post_offset : spec.post_offset + spec.n_post]
                    grads[name] = grads[name] + total.unit[name] * r_post
                else:
                    grads[name] = grads[name] + total.unit[name] * r[pw.post]
        return BatchOutput(
            grads, float(total.loss), score, total.spikes, batch, steps, total.inputs
        )

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
        with self._threads(spikes):
            out = self._run(*self._prepare(spikes, labels))
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
        with self._threads(spikes):
            tic = time.perf_counter()
            x, tgt = self._prepare(spikes, labels)
            out = self._run(x, tgt)
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

    def _adjust_gradients(self, grads: dict[str, Tensor]) -> dict[str, Tensor]:
        """Let every rule change its projection's gradient before the optimiser step."""
        clock = self._clock()
        for i, (spec, _) in enumerate(self._rules):
            grads[spec.name] = self.rule_runner.adjust_gradient(i, grads[spec.name], clock)
        return grads

    def _rewire(self) -> None:
        clock = self._clock()
        for i in range(len(self._rules)):
            self.rule_runner.update(i, clock)

    def _metrics(self, out: BatchOutput, tgt: Tensor) -> dict[str, float]:
        m = {
            "loss": out.loss / (out.trials * out.steps),
            "spikes": float(out.spikes.sum()),
            "trials": out.trials,
            "steps": out.steps,
        }
        if self.loss.classification:
            m["correct"] = int((out.scores.argmax(-1) == tgt).sum())
            m["accuracy"] = m["correct"] / out.trials
        return m

    def predict(self, spikes: Tensor) -> Tensor:
        """Class index ``[B]`` per trial: argmax of the readout summary (``readout=``)."""
        return self.scores(spikes).argmax(-1)

    def scores(self, spikes: Tensor) -> Tensor:
        """Readout summary ``[B, n_out]`` (sum, avg, max or last of ``y`` over time)."""
        with self._threads(spikes):
            x = self._check_spikes(spikes)
            return torch.cat([readout_value(y, self.readout) for y, _ in self._forward(x)])

    def hidden_spikes(self, spikes: Tensor) -> Tensor:
        """The trainer's forward pass: hidden spikes ``[B, T, N]`` (bool, hidden populations
        concatenated in declaration order) for input spikes ``[B, T, n_in]``."""
        with self._threads(spikes):
            x = self._check_spikes(spikes)
            n = self.network
            w = gather_weights(n, self.feedback_matrix)
            z_ev = self._engine.hidden_pass(n, w, x).z_events
            z = torch.zeros(z_ev.n_rows, z_ev.n, dtype=torch.bool, device=z_ev.pre.device)
            z[z_ev.row, z_ev.pre] = True
            return z.view(x.shape[1], x.shape[0], z_ev.n).transpose(0, 1)

    def readout_trace(self, spikes: Tensor) -> Tensor:
        """The trainer's readout ``y [B, T, n_out]`` for input spikes ``[B, T, n_in]``."""
        with self._threads(spikes):
            x = self._check_spikes(spikes)
            return torch.cat([y for y, _ in self._forward(x)], dim=1).transpose(0, 1)

    @staticmethod
    def simulator_inputs(spikes: Tensor) -> Tensor:
        """Inputs that make a :class:`~neurowire.Simulator` reproduce the trainer's timing.

        The trainer feeds input spikes of step ``t`` into the hidden layer in step ``t``; the
        Simulator delivers every spike one step later. Given these inputs (the same spikes and
        one empty step at the end, ``[B, T + 1, n_in]``) and run for ``T + 1`` steps, the
        Simulator's hidden spikes at step ``t + 1`` equal :meth:`hidden_spikes` at step ``t``
        (step 0 of the Simulator is silent). Its readout lags one step more and its bias
        enters from step 0: ``y_sim[t + 2] = y[t] + b (kappa^(t+1) + kappa^(t+2))`` with
        ``y`` from :meth:`readout_trace` and ``kappa`` the readout's decay.
        """
        spikes = torch.as_tensor(spikes)
        if spikes.dim() != 3:
            raise ValueError(f"spikes must be [B, T, n_in], got shape {tuple(spikes.shape)}")
        pad = torch.zeros_like(spikes[:, :1])
        return torch.cat([spikes, pad], dim=1)

    def _forward(self, x: Tensor):
        n = self.network
        w = gather_weights(n, self.feedback_matrix)
        batch, steps, _ = x.shape
        for sl in self._chunks(batch, self._chunk_size(steps)):
            z_ev = self._engine.hidden_pass(n, w, x[sl]).z_events
            yield self._engine.readout(z_ev, w, n.kappa, steps, n.step_threads), z_ev.count

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything that training changes, as tensors and plain data (for checkpoints):
        every projection (stores with their connectivity and Adam moments, dense weights),
        the readout bias, the optimiser, the random feedback, every rule's own state and
        random generators, the rewiring log and the batch counters."""
        projections = {}
        for proj in self.net.projections.values():
            if proj.sparse:
                projections[proj.name] = {"store": proj.synapses.state_dict()}
            else:
                projections[proj.name] = {"weight": proj.weight.detach().cpu().clone()}
        return {
            "projections": projections,
            "bias": self.network.bias.detach().cpu().clone(),
            "optimizer": self.optimizer.state_dict(),
            "feedback": None if self.feedback_matrix is None else self.feedback_matrix.cpu(),
            **self.rule_runner.state_dict(),
            "rewiring_log": self.rewiring_log.state_dict(),
            "step_count": self.step_count,
            "trained_ms": self._trained_ms,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into this trainer, built on the same network.

        Raises ``ValueError`` naming the first mismatch (projection names, shapes, rules).
        """
        saved = state["projections"]
        if set(saved) != set(self.net.projections):
            raise ValueError(
                f"checkpoint projections {sorted(saved)} differ from the network's "
                f"{sorted(self.net.projections)}"
            )
        if set(state["rules"]) != {spec.name for spec, _ in self._rules}:
            raise ValueError(
                f"checkpoint rewires {sorted(state['rules'])}, this trainer "
                f"{sorted(spec.name for spec, _ in self._rules)}"
            )
        for name, proj in self.net.projections.items():
            entry = saved[name]
            if proj.sparse != ("store" in entry):
                raise ValueError(f"projection {name!r} is sparse in one and dense in the other")
            if proj.sparse:
                proj.synapses.load_state_dict(entry["store"])
            else:
                w = torch.as_tensor(entry["weight"])
                if w.shape != proj.weight.shape:
                    raise ValueError(
                        f"projection {name!r}: saved weight {tuple(w.shape)}, network "
                        f"{tuple(proj.weight.shape)}"
                    )
                proj.weight.copy_(w)
        self.network.bias.copy_(torch.as_tensor(state["bias"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.optimizer.state = {
            k: {n: t.to(self.device) for n, t in st.items()}
            for k, st in self.optimizer.state.items()
        }
        if state["feedback"] is not None:
            self.feedback_matrix = torch.as_tensor(state["feedback"]).to(self.device)
        for spec, rule in self._rules:
            rule.load_state_dict(state["rules"][spec.name])
        for g, st in zip(self.rule_runner.generators, state["rule_generators"], strict=True):
            g.set_state(st)
        for r, st in zip(self.rule_runner.rngs, state["rule_rngs"], strict=True):
            r.bit_generator.state = st
        self.rewiring_log.load_state_dict(state["rewiring_log"])
        self.step_count = int(state["step_count"])
        self._trained_ms = float(state["trained_ms"])

    # ------------------------------------------------------------------ loops
    def evaluate(self, data, batch_size: int = 64, progress: bool = False) -> dict[str, float]:
        """Loss, accuracy and firing rate on ``data`` without changing anything.

        ``data``: a :class:`SpikeDataset`, :class:`Batches` or an iterable of
        ``(spikes, labels)`` batches. Distributed: every rank passes the same ``data`` and
        simulates its shard of each batch (a rank with no trial of a small batch adds nothing);
        every rank returns the whole data's metrics.
        """
        tic = time.perf_counter()
        totals = EpochTotals()
        for spikes, labels in iterate_batches(data, batch_size, shuffle=False, seed=0, epoch=0):
            with self._threads(spikes):
                x, tgt = self._prepare(spikes, labels)
                batch, steps, _ = x.shape
                own = _dist.shard(batch, self.rank, self.world_size, allow_empty=True)
                offset = own.start
                loss_sum, spk = 0.0, 0.0
                empty = torch.zeros(0, self.network.n_out, dtype=self.network.dtype)
                scores = [empty.to(self.device)]
                for y, s in self._forward(x[own]):
                    sl = slice(offset, offset + y.shape[1])
                    offset += y.shape[1]
                    loss_sum += float(self.loss.value(y, self.loss.select(tgt, sl)))
                    spk += float(s)
                    scores.append(readout_value(y, self.readout))
                score = torch.cat(scores)
                if self.world_size > 1:
                    sums = torch.tensor([loss_sum, spk], dtype=torch.float64, device=self.device)
                    sums, score = _dist.sum_identical([sums, _dist.spread_rows(score, own, batch)])
                    loss_sum, spk = float(sums[0]), float(sums[1])
            out = BatchOutput({}, loss_sum, score, torch.tensor(spk), batch, steps)
            totals.add(self._metrics(out, tgt))
        return totals.summary(self.network.hidden.n, self.net.dt, time.perf_counter() - tic)

    def fit(
        self,
        train,
        epochs: int,
        validation=None,
        callbacks: Iterable[Any] | None = None,
        progress: bool = True,
        batch_size: int = 32,
        initial_epoch: int = 0,
    ) -> list[dict[str, float]]:
        """Train for ``epochs`` passes over ``train``; returns one metrics dict per epoch.

        Args:
            train: a :class:`SpikeDataset` (batched by ``batch_size`` and shuffled from the
                trainer's seed), a :class:`Batches` (reshuffled per epoch from its own seed) or
                any re-iterable of ``(spikes, labels)`` batches (used as given).
            epochs: passes over the data.
            validation: evaluated after every epoch (keys prefixed ``val_``), or None.
            callbacks: objects with any of ``on_epoch_begin(epoch, trainer)``,
                ``on_batch_end(batch, metrics, trainer)``, ``on_epoch_end(epoch, metrics,
                trainer)``; setting ``trainer.stop_training = True`` ends training.
            progress: show a tqdm progress bar.
            batch_size: for a plain :class:`SpikeDataset`.
            initial_epoch: epochs already trained (after :meth:`load_state_dict` from a
                checkpoint): training runs epochs ``initial_epoch .. epochs - 1``, shuffled as
                an uninterrupted run would be.

        A ``nw.DeepR(l1="auto")`` rule whose L1 is not chosen yet is resolved first by
        :func:`~neurowire.learning.l1_selection.select_l1` on a validation split held out of
        ``train`` (a map-style dataset); the outcome is kept in :attr:`l1_selection`, and
        training then starts from the unchanged initial state on the whole of ``train``.

        Each epoch's dict has ``epoch``, ``loss``, ``accuracy`` (classification), ``time_s``,
        ``spikes_per_neuron_per_s`` (hidden mean rate [Hz]) and ``trials``.

        Distributed: every rank passes the same ``train`` (not a ``DistributedSampler``: the
        trainer splits each global batch itself); a batch with fewer trials than ranks is
        refused before training where the sizes are known. Only rank 0 shows progress; the
        callbacks run on every rank with the same (global) metrics and must decide alike.
        """
        from tqdm.auto import tqdm

        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        if (
            isinstance(initial_epoch, bool)
            or not isinstance(initial_epoch, int)
            or not (0 <= initial_epoch <= epochs)
        ):
            raise ValueError(f"initial_epoch must be an int in [0, epochs], got {initial_epoch!r}")
        if self.world_size > 1:
            _dist.check_batches(train, batch_size, self.world_size)
        if _l1.unresolved(self):
            self.l1_selection = _l1.select_l1(self, train, batch_size=batch_size, progress=progress)
        callbacks = list(callbacks or [])
        history = []
        self.stop_training = False
        for epoch in range(initial_epoch, epochs):
            call_hooks(callbacks, "on_epoch_begin", epoch, self)
            tic = time.perf_counter()
            totals = EpochTotals()
            batches = iterate_batches(train, batch_size, shuffle=True, seed=self.seed, epoch=epoch)
            total = len(batches) if hasattr(batches, "__len__") else None
            with tqdm(
                batches,
                total=total,
                disable=not progress or self.rank != 0,
                desc=f"epoch {epoch + 1}/{epochs}",
            ) as bar:
                for i, (spikes, labels) in enumerate(bar):
                    m = self.train_step(spikes, labels)
                    totals.add(m)
                    bar.set_postfix(totals.postfix())
                    call_hooks(callbacks, "on_batch_end", i, m, self)
                    if self.stop_training:
                        break
            metrics = {"epoch": epoch + 1}
            metrics.update(
                totals.summary(self.network.hidden.n, self.net.dt, time.perf_counter() - tic)
            )
            if validation is not None:
                val = self.evaluate(validation, batch_size=batch_size)
                metrics.update({f"val_{k}": v for k, v in val.items()})
            history.append(metrics)
            call_hooks(callbacks, "on_epoch_end", epoch, metrics, self)
            if self.stop_training:
                break
        return history


# ---------------------------------------------------------------------- helpers
def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _add(a: ChunkResult, b: ChunkResult) -> ChunkResult:
    for key, val in b.task.items():
        a.task[key] = a.task[key] + val
    for key, val in b.unit.items():
        a.unit[key] = a.unit[key] + val
    a.spikes = a.spikes + b.spikes
    a.inputs = a.inputs + b.inputs
    a.loss = a.loss + b.loss
    return a
