"""numba source derived from the models' one definition (:mod:`neurowire.codegen`).

Every function here returns the text of one numba function whose arithmetic is the model's
``update`` (or ``depress``/``potentiate``) translated statement by statement; only the loops and
the loads and stores around it are written here. The native simulator (:mod:`.engine`) puts
these functions into its generated modules; ``tests/native/test_engine.py`` pins each derivation
to the eager update it comes from.

The generated text depends on the models (their equations and constants) and the float type
only, never on population sizes, grids or seeds: sizes are read from the arrays, so one compiled
module serves every size of a network (numba's cache then holds it across runs and scales).

Neuron loops are written so that numba vectorises them: the update of every neuron first (no
branch: ``where`` becomes a select, booleans combine bitwise), then the spike list is collected
from the spike flags eight at a time (:func:`.delivery.list_spikes`). A stochastic model's
``rand`` is computed in the loop from the counter-based generator (:mod:`neurowire.rng`), so no
random numbers are drawn on the host.

A model whose ``step`` is overridden, or whose ``update`` leaves the model language, cannot be
derived: :func:`unsupported_model` says why, and the engines refuse it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..codegen import ModelCodeError, Scalar, translate

INDENT = "    "


def _indent(lines: list[str], depth: int) -> list[str]:
    return [INDENT * depth + ln for ln in lines]


def _function(name: str, args: str, body: list[str]) -> str:
    return (
        f"@njit(cache=True, nogil=True)\ndef {name}({args}):\n" + "\n".join(_indent(body, 1)) + "\n"
    )


def float_type(np_dtype: Any) -> str:
    return np_dtype.__name__ if hasattr(np_dtype, "__name__") else str(np_dtype)


def unsupported_model(model: Any, dt: float, ftype: str = "float64") -> str | None:
    """Why no native code can be derived from ``model``, or None (spike sources and Poisson
    generators have kernels of their own)."""
    if model.external or model.counting:
        return None
    derives = getattr(type(model), "derives_code", None)
    if derives is None or not derives():
        return (
            f"{type(model).__name__} overrides step() instead of defining update() in the model "
            "language"
        )
    try:
        neuron_kernel(model, dt, "probe", ftype)
    except ModelCodeError as err:
        return str(err)
    return None


@dataclass
class _NeuronCode:
    """The per-neuron code of one model: loads, translated update, stores (``[b, i]``)."""

    fields: list[str]
    params: list[str]
    loads: list[str]
    lines: list[str]
    stores: list[str]
    shared_rows: list[str]  # ``<f>_b = ...`` lines, once per batch row
    spikes: bool  # the update assigns z (a spike list is collected)


def _uniform_call(ftype: str) -> str:
    return "nwrng.uniform32" if ftype == "float32" else "nwrng.uniform64"


def _neuron_code(model: Any, dt: float, ftype: str, i_syn: str, prefix: str = "s_") -> _NeuronCode:
    fields = list(model.state_type._fields)
    probe = model.init_state(2, torch.device("cpu"), torch.float64)
    shared = {f for f in fields if getattr(probe, f).shape[0] == 1}  # one row for the batch
    inputs = {"i_syn": i_syn}
    if model.stochastic:
        inputs["rand"] = f"{prefix}rand"
    params = list(model.param_names)
    spec = Scalar(
        state={f: f for f in fields},
        inputs=inputs,
        constants=model.cached_constants(dt),
        arrays={k: f"{k}[i]" for k in params},
        float_type=ftype,
    )
    tr = translate(model, "update", spec, prefix=prefix)
    row = {f: (f"{f}_b" if f in shared else "b") for f in fields}
    loads = []
    if model.stochastic:  # position b * n + i of this step's numbers (neurowire.rng)
        loads.append(f"{prefix}rand = {_uniform_call(ftype)}(key, base + np.uint64(b * n + i))")
    for f in fields:
        value = f"{f}[{row[f]}, i]"
        if f == "z":
            value = f"np.{ftype}(1.0) if {value} else np.{ftype}(0.0)"
        loads.append(f"{prefix}{f}_0 = {value}")
    stores = [f"{f}[{row[f]}, i] = {final}" for f, final in tr.assigned.items()]
    shared_rows = [f"{f}_b = b if {f}.shape[0] > 1 else 0" for f in sorted(shared)]
    return _NeuronCode(fields, params, loads, tr.lines, stores, shared_rows, "z" in tr.assigned)


def _neuron_body(code: _NeuronCode, stochastic: bool, pre_lines: list[str]) -> list[str]:
    """Loops over ``[b, i]``: ``pre_lines`` (postsynaptic models) and the neuron's update for
    every neuron, then this step's spikes into ``spk``/``nspk``."""
    body = ["batch, n = z.shape", "count = 0"]
    if stochastic:  # this step's first position in the population's stream
        body.append("base = np.uint64(step) * np.uint64(batch * n)")
    body.append("for b in range(batch):")
    loop = code.loads + pre_lines + code.lines + code.stores
    body += _indent(code.shared_rows, 1)
    body += _indent(["for i in range(n):"], 1) + _indent(loop, 2)
    if code.spikes:
        body += _indent(["count = spikes_out.list_spikes(z[b], spk, b * n, count)"], 1)
    body.append("nspk[0] = count")
    return body


def neuron_kernel(model: Any, dt: float, name: str, ftype: str) -> str:
    """Source of ``name(<state arrays>, i_syn, [key, step,] <params>, spk, nspk)``: one step of
    a population, in place on ``[B, n]`` arrays; lists this step's spikes ``b * n + i`` in
    ``spk`` (ascending) and their count in ``nspk[0]``.

    Arguments, in order: the state fields (``model.state_type``), ``i_syn``, for a stochastic
    model its stream's ``key`` (uint64) and the global ``step`` (``rand`` is the stream's
    number at position ``step * B * n + b * n + i``, :mod:`neurowire.rng`), the per-neuron
    parameters ``model.param_names`` (``[n]``), ``spk``, ``nspk``. A state variable that
    ``init_state`` gives one row (a rate shared by the batch) is broadcast over the batch.
    """
    code = _neuron_code(model, dt, ftype, "i_syn[b, i]")
    random = ["key", "step"] if model.stochastic else []
    args = ", ".join(code.fields + ["i_syn"] + random + code.params + ["spk", "nspk"])
    return _function(name, args, _neuron_body(code, model.stochastic, []))


def pure_source(model: Any, dt: float, ftype: str) -> bool:
    """Whether a stochastic model's spikes depend on nothing that changes within a block: its
    update assigns only ``z`` and reads neither ``i_syn`` nor the previous ``z`` (a
    ``PoissonSource``). Then a block's spikes can be drawn ahead, on another thread
    (:func:`producer_kernel`), with the same numbers as in the step."""
    if not model.stochastic or model.external:
        return False
    code = _neuron_code(model, dt, ftype, "ISYN_SENTINEL")
    text = "\n".join(code.lines + code.stores)
    return (
        code.spikes
        and [st.split("[")[0] for st in code.stores] == ["z"]
        and "ISYN_SENTINEL" not in text
        and "s_z_0" not in text
    )


def producer_kernel(model: Any, dt: float, name: str, ftype: str) -> str:
    """Source of ``name(<state arrays but z>, key, step0, <params>, zbuf, ready, nxt)`` for a
    :func:`pure_source` model: draws the spike flags of steps ``step0 + t`` into ``zbuf[t]``
    (``[steps, B, n]``) for the steps ``t`` it claims from the counter ``nxt[0]`` (the block
    claims the steps it computes itself from the same counter), publishing each with
    ``ready[t] = 1``. The flags are those :func:`neuron_kernel` computes in step ``t``."""
    code = _neuron_code(model, dt, ftype, "np.nan")
    fields = [f for f in code.fields if f != "z"]
    loads = [ln for ln in code.loads if not ln.startswith("s_z_0 ")]
    final = code.stores[0].split(" = ", 1)[1]
    loop = loads + code.lines + [f"zbuf[t, b, i] = {final}"]
    body = [
        "steps, batch, n = zbuf.shape",
        "while True:",
        "    t = atomics.fetch_add(nxt, 0, 1)",
        "    if t >= steps:",
        "        break",
        "    base = np.uint64(step0 + t) * np.uint64(batch * n)",
        "    for b in range(batch):",
    ]
    body += _indent(code.shared_rows, 2) + _indent(["for i in range(n):"], 2) + _indent(loop, 3)
    body.append("    atomics.store_release(ready, t, 1)")
    args = ", ".join(fields + ["key", "step0"] + code.params + ["zbuf", "ready", "nxt"])
    return _function(name, args, body)


def _psc_code(model: Any, dt: float, ftype: str, state: str, w_sum: str, v: str, prefix: str):
    """(lines, current expression, state stores) of a postsynaptic model at ``[b, i]``; its
    variable ``k`` (``model.state_vars``) is ``state[k, b, i]``."""
    names = model.state_vars
    spec = Scalar(
        state={var: var for var in names},
        inputs={"w_sum": f"{w_sum}[b, i]", "v": v},
        constants=model.cached_constants(dt),
        float_type=ftype,
    )
    tr = translate(model, "update", spec, prefix=prefix)
    if tr.result is None:
        raise ModelCodeError(f"{type(model).__name__}.update must return the input current")
    lines = [f"{prefix}{var}_0 = {state}[{k}, b, i]" for k, var in enumerate(names)]
    lines += tr.lines
    stores = [f"{w_sum}[b, i] = 0"]
    stores += [
        f"{state}[{k}, b, i] = {tr.assigned[var]}"
        for k, var in enumerate(names)
        if var in tr.assigned
    ]
    return lines, tr.result, stores


def psc_kernel(model: Any, dt: float, name: str, ftype: str) -> str:
    """Source of ``name(state, w_sum, v, i_syn, first)``: the postsynaptic model's update for
    every ``[b, i]``; ``i_syn`` is written (``first``) or added to, ``w_sum`` zeroed. ``state``
    is ``[len(model.state_vars), B, n_post]``, ``v`` the postsynaptic membrane potential (any
    ``[B, n]`` array when unused)."""
    lines, current, stores = _psc_code(model, dt, ftype, "state", "w_sum", "v[b, i]", "s_")
    loop = lines + [f"current = {current}"]
    loop += ["i_syn[b, i] = current if first else i_syn[b, i] + current", *stores]
    body = ["batch, n = w_sum.shape", "for b in range(batch):", f"{INDENT}for i in range(n):"]
    body += _indent(loop, 2)
    return _function(name, "state, w_sum, v, i_syn, first", body)


def population_kernel(model: Any, pscs: list[Any], dt: float, name: str, ftype: str) -> str:
    """Source of one fused step of a population and its incoming postsynaptic models, in one
    loop over ``[b, i]``: every model ``pscs[m]`` turns ``w_sum<m>`` into a current (reading
    the membrane potential before this step's update, as in the separate phases), the currents
    are summed in projection order into the neuron's input, then the neuron steps.

    Arguments: as :func:`neuron_kernel` without ``i_syn``, then ``state<m>, w_sum<m>`` per
    postsynaptic model. The same arithmetic as :func:`psc_kernel` followed by
    :func:`neuron_kernel`, without the ``i_syn`` array in between.
    """
    pre_lines: list[str] = []
    i_syn = f"np.{ftype}(0.0)"
    for m, psc in enumerate(pscs):
        v = "v[b, i]" if psc.needs_voltage else "np.nan"
        lines, current, stores = _psc_code(psc, dt, ftype, f"state{m}", f"w_sum{m}", v, f"c{m}_")
        total = current if m == 0 else f"isyn_{m - 1} + {current}"
        pre_lines += [*lines, f"isyn_{m} = {total}", *stores]  # read w_sum, then zero it
        i_syn = f"isyn_{m}"
    code = _neuron_code(model, dt, ftype, i_syn)
    random = ["key", "step"] if model.stochastic else []
    extra = [f"state{m}, w_sum{m}" for m in range(len(pscs))]
    args = ", ".join(code.fields + random + code.params + ["spk", "nspk"] + extra)
    return _function(name, args, _neuron_body(code, model.stochastic, pre_lines))


def synapse_expression(
    rule: Any, method: str, dt: float, inputs: dict[str, str], ftype: str
) -> str:
    """The return expression of a plasticity rule's per-synapse method, as scalar code."""
    spec = Scalar(state={}, inputs=inputs, constants=rule.cached_constants(dt), float_type=ftype)
    tr = translate(rule, method, spec, prefix="r_")
    if tr.lines or tr.result is None:
        raise ModelCodeError(f"{type(rule).__name__}.{method} must be a single return expression")
    return tr.result


def stdp_kernel(rule: Any, dt: float, name: str, ftype: str, columns: str = "slots") -> str:
    """Source of the trace-STDP step for batch 1 (see :class:`neurowire.STDP`), derived from the
    rule's methods as :meth:`~neurowire.STDP.torch_step` runs them: ``decay_pre``/``decay_post``
    every trace, ``depress`` the rows of this step's presynaptic spikes, ``potentiate`` the
    synapses of its postsynaptic spikes, then ``count_spikes`` into the traces.

    Arguments: ``w, ind, row_length, c0, c1, spk_pre, nspk_pre, spk_post, nspk_post, x_pre,
    x_post``, where ``c0, c1`` find a column's synapses: with ``columns="slots"`` the store's
    column index (:meth:`~neurowire.RaggedSynapses.slot_columns`: ``col_indptr``,
    ``col_slot``), with ``columns="lists"`` the engine's column lists (``col_pre [n_post, C]``
    presynaptic rows, ``col_len [n_post]``; :func:`.rules.build_column_lists`), each row then
    searched for the column. Each synapse of a spiking column is potentiated once, whatever the
    order of the column's entries, so both give the same weights.
    """
    decay_pre = synapse_expression(rule, "decay_pre", dt, {"x_pre": "x_pre[i]"}, ftype)
    decay_post = synapse_expression(rule, "decay_post", dt, {"x_post": "x_post[j]"}, ftype)
    count_pre = synapse_expression(rule, "count_spikes", dt, {"x": "x_pre[i]", "z": "1"}, ftype)
    count_post = synapse_expression(rule, "count_spikes", dt, {"x": "x_post[j]", "z": "1"}, ftype)
    dep = synapse_expression(
        rule, "depress", dt, {"w": "w[i, s]", "x_post": "x_post[ind[i, s]]"}, ftype
    )
    body = [
        "for i in range(x_pre.shape[0]):",
        f"    x_pre[i] = {decay_pre}",
        "for j in range(x_post.shape[0]):",
        f"    x_post[j] = {decay_post}",
        "for e in range(nspk_pre[0]):",
        "    i = spk_pre[e]",
        "    for s in range(row_length[i]):",
        f"        w[i, s] = {dep}",
    ]
    if columns == "slots":
        pot = synapse_expression(
            rule, "potentiate", dt, {"w": "flat[slot]", "x_pre": "x_pre[slot // capacity]"}, ftype
        )
        body += [
            "capacity = w.shape[1]",
            "flat = w.reshape(-1)",
            "for e in range(nspk_post[0]):",
            "    j = spk_post[e]",
            "    for c in range(c0[j], c0[j + 1]):",
            "        slot = c1[c]",
            f"        flat[slot] = {pot}",
        ]
    elif columns == "lists":
        pot = synapse_expression(
            rule, "potentiate", dt, {"w": "w[i, s]", "x_pre": "x_pre[i]"}, ftype
        )
        body += [
            "for e in range(nspk_post[0]):",
            "    j = spk_post[e]",
            "    for c in range(c1[j]):",
            "        i = c0[j, c]",
            "        for s in range(row_length[i]):",
            "            if ind[i, s] == j:",
            f"                w[i, s] = {pot}",
            "                break",
        ]
    else:
        raise ValueError(f"columns must be 'slots' or 'lists', got {columns!r}")
    body += [
        "for e in range(nspk_pre[0]):",
        "    i = spk_pre[e]",
        f"    x_pre[i] = {count_pre}",
        "for e in range(nspk_post[0]):",
        "    j = spk_post[e]",
        f"    x_post[j] = {count_post}",
    ]
    args = "w, ind, row_length, c0, c1, spk_pre, nspk_pre, spk_post, nspk_post, x_pre, x_post"
    return _function(name, args, body)


MODULE_HEADER = (
    "import math\n\nimport numpy as np\nfrom numba import njit\n\n"
    "from neurowire.native import atomics\n"
    "from neurowire.native import delivery as spikes_out\n"
    "from neurowire.native import rng as nwrng\n"
)
