"""Each hidden population's part of the fused e-prop kernels, for numba and for Triton.

Both fused forward kernels (:mod:`.native`, :mod:`.triton`) run each hidden population's
``update`` and ``pseudo_derivative`` (the models' one definition, translated by
:func:`neurowire.codegen.translate`) between loading and storing its state. :func:`segment`
writes those lines once; a :class:`Dialect` says how a target names, loads, stores and flushes
state, and each kernel adds its own lines that keep ``psi`` and the spikes. Both backward
kernels likewise run the models' ``eprop_adjoint`` as :func:`adjoint_lines` writes it, once per
run of populations sharing a definition (:func:`adjoint_groups`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..codegen import ModelCodeError, Scalar, translate


@dataclass(frozen=True)
class Dialect:
    """How a target writes a population's state handling. Templates are formatted with ``k``
    (population index), ``f`` (state variable), ``n`` (its neurons), ``final`` (the value to
    store) and ``ref`` (the stored variable, from ``ref``).

    ``target``: :class:`~neurowire.codegen.Scalar`'s target; ``i_syn``: the input current's
    expression; ``prev_z``: the previous spikes as numbers; ``arrays``: per-neuron constants
    (the pseudo-derivative's) -> expression.
    """

    target: str
    i_syn: str
    prev_z: str
    ref: str
    alloc_float: str
    alloc_int: str
    store_float: str
    store_int: str
    arrays: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Segment:
    """Population ``k``'s lines: ``alloc`` (state storage, before the loops) and ``lines``
    (load, ``update``, store with flushing below ``tiny``; per neuron or per block), and the
    names of its spike test's ``distance``, ``refractory``, its new spikes ``spiked`` and its
    pseudo-derivative ``psi`` (an expression, before the refractory test)."""

    alloc: list[str]
    lines: list[str]
    distance: str
    refractory: str
    spiked: str
    psi: str


def segment(k: int, model, dt: float, ftype: str, dialect: Dialect) -> Segment:
    """The lines of population ``k`` (``model``) for ``dialect``, floats of ``ftype``."""
    probe = model.init_state(1, torch.device("cpu"), torch.float64)
    fields = [f for f in model.state_type._fields if f != "z"]
    floating = {f: getattr(probe, f).is_floating_point() for f in fields}
    alloc = [
        (dialect.alloc_float if floating[f] else dialect.alloc_int).format(k=k, f=f, n=model.n)
        for f in fields
    ]
    spec = Scalar(
        state={f: f for f in model.state_type._fields},
        inputs={"i_syn": dialect.i_syn},
        constants=model.cached_constants(dt),
        float_type=ftype,
        target=dialect.target,
    )
    tr = translate(model, "update", spec, prefix=f"k{k}_s_")
    if tr.distance is None or "z" not in tr.assigned:
        raise ModelCodeError(
            f"{type(model).__name__}.update must set s.z = spike(distance, refractory) for e-prop"
        )
    pd_spec = Scalar(
        state={},
        inputs={"distance": tr.distance},
        constants={},
        arrays=dialect.arrays,
        float_type=ftype,
        target=dialect.target,
    )
    psi = translate(model, "pseudo_derivative", pd_spec, prefix=f"k{k}_pd_")
    lines = [f"k{k}_s_z_0 = {dialect.prev_z}"]
    lines += [f"k{k}_s_{f}_0 = {dialect.ref.format(k=k, f=f)}" for f in fields]
    lines += tr.lines + psi.lines
    for f in fields:
        if f not in tr.assigned:
            continue
        store = dialect.store_float if floating[f] else dialect.store_int
        lines.append(store.format(ref=dialect.ref.format(k=k, f=f), final=tr.assigned[f]))
    return Segment(alloc, lines, tr.distance, tr.refractory, tr.assigned["z"], psi.result)


#: the state of e-prop's adjoint recursion (``eprop_adjoint``'s ``a``), in the order it is stored
ADJOINT_STATE = ("h", "q")


def adjoint_groups(models: tuple) -> list[tuple[object, int, int]]:
    """``(model, lo, hi)``: runs of consecutive populations (neurons ``lo .. hi - 1`` of the
    layer) whose models share one ``eprop_adjoint`` definition, each run translated once."""
    groups: list[tuple[object, int, int]] = []
    lo = 0
    for model in models:
        hi = lo + model.n
        if groups and type(groups[-1][0]).eprop_adjoint is type(model).eprop_adjoint:
            groups[-1] = (groups[-1][0], groups[-1][1], hi)
        else:
            groups.append((model, lo, hi))
        lo = hi
    return groups


def adjoint_lines(
    model,
    dt: float,
    ftype: str,
    target: str,
    refs: dict[str, str],
    psi: str,
    lam: str,
    arrays: dict[str, str],
    store: str,
    prefix: str,
) -> list[str]:
    """One step of ``model.eprop_adjoint``: the translated statements with inputs ``psi`` and
    ``lam`` and the per-neuron ``arrays`` (``alpha``, ``rho``, ``beta``), reading the adjoint
    state from ``refs`` (``"h"``, ``"q"`` -> stored variable) where they read it (loads placed
    elsewhere let the compiler contract other multiply-adds: other rounding), then a ``store``
    (template of ``ref`` and ``final``) of every variable written."""
    spec = Scalar(
        state={f: f for f in ADJOINT_STATE},
        inputs={"psi": psi, "lam": lam},
        constants=model.cached_constants(dt),
        arrays=arrays,
        float_type=ftype,
        target=target,
    )
    tr = translate(model, "eprop_adjoint", spec, prefix=prefix)
    lines = []
    for line in tr.lines:  # the state is read where the statements read it
        for f in ADJOINT_STATE:
            line = line.replace(f"{prefix}{f}_0", refs[f])
        lines.append(line)
    for f in ADJOINT_STATE:
        if f in tr.assigned:
            lines.append(store.format(ref=refs[f], final=tr.assigned[f]))
    return lines
