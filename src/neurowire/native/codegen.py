"""numba source derived from the models' one definition (:mod:`neurowire.codegen`).

Every function here returns the text of one numba function whose arithmetic is the model's
``update`` (or ``depress``/``potentiate``) translated statement by statement; only the loops and
the loads and stores around it are written here. The native simulator (:mod:`.engine`) and the
native e-prop forward pass (:mod:`neurowire.learning.native`) put these functions into generated
modules; ``tests/test_native_engine.py`` and ``tests/learning/test_eprop_native.py`` pin each
derivation to the eager update it comes from.

A model whose ``step`` is overridden, or whose ``update`` leaves the model language, cannot be
derived: :func:`unsupported_model` says why, and the engines refuse it by name.
"""

from __future__ import annotations

from typing import Any

import torch

from ..codegen import ModelCodeError, Scalar, translate

INDENT = "    "


def _indent(lines: list[str], depth: int) -> list[str]:
    return [INDENT * depth + ln for ln in lines]


def float_type(np_dtype: Any) -> str:
    return np_dtype.__name__ if hasattr(np_dtype, "__name__") else str(np_dtype)


def unsupported_model(model: Any, dt: float, ftype: str = "float64") -> str | None:
    """Why no native code can be derived from ``model``, or None."""
    if model.external:
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


def _state_names(model: Any) -> list[str]:
    return [f for f in model.state_type._fields]


def neuron_kernel(model: Any, dt: float, name: str, ftype: str) -> str:
    """Source of ``name(<state arrays>, <inputs>, <params>, spk, nspk)``: one step of a
    population, in place on ``[B, n]`` arrays; appends this step's spikes ``b * n + i`` to
    ``spk`` and writes their count to ``nspk[0]``.

    Arguments, in order: the state fields (``model.state_type``), ``i_syn`` (``rand`` too for a
    stochastic model), the per-neuron parameters ``model.param_names`` (``[n]``), ``spk``,
    ``nspk``. A state variable that ``init_state`` gives one row (a rate shared by the batch)
    is broadcast over the batch.
    """
    fields = _state_names(model)
    probe = model.init_state(2, torch.device("cpu"), torch.float64)
    shared = {f for f in fields if getattr(probe, f).shape[0] == 1}  # one row for the batch
    inputs = ["i_syn", "rand"] if model.stochastic else ["i_syn"]
    params = list(model.param_names)
    spec = Scalar(
        state={f: f for f in fields},
        inputs={k: f"{k}[b, i]" for k in inputs},
        constants=model.cached_constants(dt),
        arrays={k: f"{k}[i]" for k in params},
        float_type=ftype,
    )
    tr = translate(model, "update", spec, prefix="s_")
    args = ", ".join(fields + inputs + params + ["spk", "nspk"])
    body = ["batch, n = z.shape", "count = 0", "for b in range(batch):"]
    body += [f"{INDENT}{f}_b = b if {f}.shape[0] > 1 else 0" for f in sorted(shared)]
    row = {f: (f"{f}_b" if f in shared else "b") for f in fields}
    loop = []
    for f in fields:
        value = f"{f}[{row[f]}, i]"
        if f == "z":
            value = f"np.{ftype}(1.0) if {value} else np.{ftype}(0.0)"
        loop.append(f"s_{f}_0 = {value}")
    loop += tr.lines
    for f, final in tr.assigned.items():
        loop.append(f"{f}[{row[f]}, i] = {final}")
    if "z" in tr.assigned:
        z = tr.assigned["z"]
        loop += [f"if {z}:", f"{INDENT}spk[count] = b * n + i", f"{INDENT}count += 1"]
    body += [f"{INDENT}for i in range(n):"] + _indent(loop, 2)
    body.append("nspk[0] = count")
    return (
        f"@njit(cache=True, nogil=True)\ndef {name}({args}):\n" + "\n".join(_indent(body, 1)) + "\n"
    )


def psc_kernel(model: Any, dt: float, name: str, ftype: str) -> str:
    """Source of ``name(state, w_sum, v, i_syn, first)``: the postsynaptic model's update for
    every ``[b, j]``; ``i_syn`` is written (``first``) or added to, ``w_sum`` zeroed. ``state``
    is ``[B, n_post]`` (``[B, 0]`` for a stateless model), ``v`` the postsynaptic membrane
    potential (any ``[B, n]`` array when unused)."""
    var = model.state_var
    spec = Scalar(
        state={var: var} if var else {},
        inputs={"w_sum": "w_sum[b, j]", "v": "v[b, j]"},
        constants=model.cached_constants(dt),
        float_type=ftype,
    )
    tr = translate(model, "update", spec, prefix="s_")
    if tr.result is None:
        raise ModelCodeError(f"{type(model).__name__}.update must return the input current")
    loop = [f"s_{var}_0 = state[b, j]"] if var else []
    loop += tr.lines + [f"current = {tr.result}"]
    loop += ["i_syn[b, j] = current if first else i_syn[b, j] + current", "w_sum[b, j] = 0"]
    if var and var in tr.assigned:
        loop.append(f"state[b, j] = {tr.assigned[var]}")
    body = ["batch, n = w_sum.shape", "for b in range(batch):", f"{INDENT}for j in range(n):"]
    body += _indent(loop, 2)
    return (
        f"@njit(cache=True, nogil=True)\ndef {name}(state, w_sum, v, i_syn, first):\n"
        + "\n".join(_indent(body, 1))
        + "\n"
    )


def synapse_expression(
    rule: Any, method: str, dt: float, inputs: dict[str, str], ftype: str
) -> str:
    """The return expression of a plasticity rule's per-synapse method, as scalar code."""
    spec = Scalar(state={}, inputs=inputs, constants=rule.cached_constants(dt), float_type=ftype)
    tr = translate(rule, method, spec, prefix="r_")
    if tr.lines or tr.result is None:
        raise ModelCodeError(f"{type(rule).__name__}.{method} must be a single return expression")
    return tr.result


def stdp_kernel(rule: Any, dt: float, name: str, ftype: str) -> str:
    """Source of the trace-STDP step for batch 1 (see :class:`neurowire.STDP`): decay traces,
    ``depress`` the rows of this step's presynaptic spikes, ``potentiate`` the columns of its
    postsynaptic spikes through the column index, then add the spikes to the traces.

    Arguments: ``w, ind, row_length, col_indptr, col_slot, spk_pre, nspk_pre, spk_post,
    nspk_post, x_pre, x_post``.
    """
    c = rule.cached_constants(dt)
    lit = f"np.{ftype}"
    dep = synapse_expression(
        rule, "depress", dt, {"w": "w[i, s]", "x_post": "x_post[ind[i, s]]"}, ftype
    )
    pot = synapse_expression(
        rule, "potentiate", dt, {"w": "flat[slot]", "x_pre": "x_pre[slot // capacity]"}, ftype
    )
    body = [
        "capacity = w.shape[1]",
        f"x_pre *= {lit}({c['k_plus']!r})",
        f"x_post *= {lit}({c['k_minus']!r})",
        "for e in range(nspk_pre[0]):",
        "    i = spk_pre[e]",
        "    for s in range(row_length[i]):",
        f"        w[i, s] = {dep}",
        "flat = w.reshape(-1)",
        "for e in range(nspk_post[0]):",
        "    j = spk_post[e]",
        "    for c in range(col_indptr[j], col_indptr[j + 1]):",
        "        slot = col_slot[c]",
        f"        flat[slot] = {pot}",
        "for e in range(nspk_pre[0]):",
        "    x_pre[spk_pre[e]] += 1",
        "for e in range(nspk_post[0]):",
        "    x_post[spk_post[e]] += 1",
    ]
    args = (
        "w, ind, row_length, col_indptr, col_slot, spk_pre, nspk_pre, spk_post, nspk_post, "
        "x_pre, x_post"
    )
    return (
        f"@njit(cache=True, nogil=True)\ndef {name}({args}):\n" + "\n".join(_indent(body, 1)) + "\n"
    )


MODULE_HEADER = "import math\n\nimport numpy as np\nfrom numba import njit\n\n"
