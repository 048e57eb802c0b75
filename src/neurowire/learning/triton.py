"""Triton kernels of factorised e-prop on the GPU, the counterparts of :mod:`.native`.

==========================  ==========================================  =====================
kernel                      reference (PyTorch)                         one program per
==========================  ==========================================  =====================
``forward`` (generated      :func:`.forward.input_currents`,            trial, looping over
from the models)            :class:`.forward.HiddenDynamics`,           all steps
                            :func:`.forward.pseudo_derivative_`
``backward`` (generated     the learning signal ``E_kappa B^T``,        trial, looping
from the models)            :func:`.factorized.membrane_adjoint_`,      backwards in time
                            :func:`.factorized.spike_products`
==========================  ==========================================  =====================

Both kernels read the input and recurrent projections as the :class:`.tables.Layout` tables
(built on the device), the hidden layer of ``N`` neurons as one vector of
``BLOCK_N = next_power_of_2(N)`` lanes. The forward kernel keeps every population's state, the
previous spikes and the recurrent input from dense rows on chip for the whole trial, and the
hidden models' ``update`` and ``pseudo_derivative`` (forward) and ``eprop_adjoint`` (backward)
are translated by :func:`neurowire.codegen.translate` (``target="triton"``), never written
here. Slot rows scatter into a per-trial scratch vector
(``tl.atomic_add``), read back after a barrier; each step's spikes are listed in a per-trial
scratch buffer (positions from ``tl.cumsum``) and their recurrent rows delivered into the next
step's input. The backward kernel computes ``Lambda_t = B E_kappa,t + R``, the recursions for
``H_t`` (and, if asked, for ``Lambda = 1``) and adds ``H_t`` at the targets of the input events
of step ``t`` and of the hidden events of step ``t - 1`` into the gradient tables with
``tl.atomic_add`` (all trials add into one table; slot rows gather ``H_t`` from a per-trial
scratch copy). ``H`` is never stored.

The spike events (:func:`.forward.input_events`, :func:`.forward.hidden_events`), the readout
and the readout filter's scans still run as the PyTorch reference functions on the device: they
are not per-step loops of small operations.

On a CPU tensor the kernels run in Triton's interpreter, and only when ``TRITON_INTERPRET=1``
(how the tests run without a GPU); otherwise a CPU tensor is refused. As in :mod:`.native`,
decaying state below the dtype's smallest normal number is set to zero.
"""

from __future__ import annotations

import torch
import triton
from torch import Tensor
from triton import knobs

from ..codegen import generated_module
from ..events import SpikeEvents
from .segments import Dialect, adjoint_groups, adjoint_lines, segment
from .tables import Layout, Weights, layouts


def check_device(device: torch.device) -> None:
    """Refuse a CPU device unless Triton's interpreter is on (``TRITON_INTERPRET=1``)."""
    if device.type == "cpu" and not knobs.runtime.interpret:
        raise ValueError(
            "engine='triton' runs on CUDA tensors; on the CPU only in Triton's interpreter "
            "(set TRITON_INTERPRET=1 before the first kernel is generated) or use 'native'"
        )


def _tables(w: Weights, enet) -> tuple[Layout, Layout]:
    """:func:`.tables.layouts` with the tables on the network's device."""
    with torch.device(enet.device):
        return layouts(w, enet)


def _ftype(dtype: torch.dtype) -> str:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"engine='triton' computes in float32 or float64, not {dtype}")
    return "float32" if dtype == torch.float32 else "float64"


def _tiny(ftype: str) -> str:
    """The smallest normal number of ``ftype`` as a literal."""
    return repr(float(torch.finfo(getattr(torch, ftype)).tiny))


def _mode() -> str:
    return "interpreter" if knobs.runtime.interpret else "compiled"


def _width(layout: Layout) -> int:
    return layout.weight.shape[1]


# ---------------------------------------------------------------------- forward
_FORWARD_KERNELS: dict[tuple, object] = {}


def forward_kernel(
    models: tuple, dt: float, dtype: torch.dtype, input_dense: bool, recurrent_dense: bool
):
    """The ``@triton.jit`` forward kernel of a hidden layer made of ``models`` (one per
    population, in layer order) with dense or slot tables, generated once per key."""
    key = (models, dt, dtype, input_dense, recurrent_dense, _mode())
    if key not in _FORWARD_KERNELS:
        source = forward_source(models, dt, _ftype(dtype), input_dense, recurrent_dense)
        _FORWARD_KERNELS[key] = generated_module(source, "eprop_forward_triton").forward
    return _FORWARD_KERNELS[key]


def _scatter(prefix: str, target: str, dense: bool) -> list[str]:
    """Lines adding row ``i`` of a :class:`.tables.Layout` (``{prefix}_w/_post/_len``) to the
    register vector ``target`` (dense) or to the trial's scratch vector ``cur`` (slots)."""
    if dense:
        return [f"{target} += tl.load({prefix}_w + i * n + j, mask=live, other=0.0)"]
    block = "BLOCK_IN" if prefix == "in" else "BLOCK_REC"
    return [
        f"sl = tl.arange(0, {block})",
        f"ok = sl < tl.load({prefix}_len + i)",
        f"post = tl.load({prefix}_post + i * {prefix}_width + sl, mask=ok, other=0)",
        f"wv = tl.load({prefix}_w + i * {prefix}_width + sl, mask=ok, other=0.0)",
        "tl.atomic_add(cur + b * n + post, wv, mask=ok)",
    ]


def forward_source(
    models: tuple, dt: float, ftype: str, input_dense: bool = False, recurrent_dense: bool = False
) -> str:
    """Triton source of ``forward(in_crow, in_pre, in_w, in_post, in_len, rec_w, rec_post,
    rec_len, inv_v_th, scale, psi, z, cur, spk, batch, steps, n, in_width, rec_width, BLOCK_N,
    BLOCK_IN, BLOCK_REC)``, one program per trial looping over its steps.

    Per step: the input events of row ``t * B + b`` add their rows (dense: to a register
    vector; slots: to the scratch vector ``cur [B, N]``, read and zeroed after a barrier); each
    population ``k``'s translated ``update`` runs on the whole vector with ``i_syn`` = input +
    recurrent current and its lanes are kept; state is flushed below the smallest normal
    number; ``psi`` (0 while refractory) and ``z`` are stored; the spikes are listed in
    ``spk [B, N]`` and their recurrent rows delivered for the next step.
    """
    dtype = f"tl.{ftype}"
    body = [
        "b = tl.program_id(0).to(tl.int64)",
        "j = tl.arange(0, BLOCK_N)",
        "live = j < n",
        "inv = tl.load(inv_v_th + j, mask=live, other=1.0)",
        "sc = tl.load(scale + j, mask=live, other=0.0)",
        f"zero = tl.zeros([BLOCK_N], {dtype})",
        "rec = zero",
        "zp = zero",
    ]
    dialect = Dialect(
        target="triton",
        i_syn="i_syn",
        prev_z="zp",
        ref="k{k}_{f}",
        alloc_float=f"k{{k}}_{{f}} = tl.zeros([BLOCK_N], {dtype})",
        alloc_int="k{k}_{f} = tl.zeros([BLOCK_N], tl.int32)",
        store_float=f"{{ref}} = tl.where(tl.abs({{final}}) >= {_tiny(ftype)}, {{final}}, 0.0)"
        f".to({dtype})",
        store_int="{ref} = ({final}).to(tl.int32)",
        arrays={"inv_v_th": "inv", "psi_scale": "sc"},
    )
    segments, lo = [], 0
    for k, model in enumerate(models):
        seg = segment(k, model, dt, ftype, dialect)
        body += seg.alloc
        mine = "live" if len(models) == 1 else f"(j >= {lo}) & (j < {lo + model.n})"
        segments.append(
            seg.lines
            + [
                f"p = {seg.psi}",
                f"psi_t = tl.where({mine}, tl.where({seg.refractory} != 0, 0.0, p), psi_t)",
                f"z_t = tl.where({mine}, {seg.spiked} != 0, z_t)",
            ]
        )
        lo += model.n
    step = [
        "acc = zero",
        "r = t * batch + b",
        "for e in range(tl.load(in_crow + r), tl.load(in_crow + r + 1)):",
        "    i = tl.load(in_pre + e)",
    ]
    step += [f"    {ln}" for ln in _scatter("in", "acc", input_dense)]
    if not (input_dense and recurrent_dense):  # slot rows were scattered into cur
        step += [
            "tl.debug_barrier()",
            "acc += tl.load(cur + b * n + j, mask=live, other=0.0, volatile=True)",
            "tl.store(cur + b * n + j, zero, mask=live)",
        ]
    step += ["i_syn = acc + rec", "psi_t = zero", "z_t = j < 0"]
    for lines in segments:
        step += lines
    step += [
        "z_t = z_t & live",
        "row = (b * steps + t) * n + j",
        "tl.store(psi + row, psi_t, mask=live)",
        "tl.store(z + row, z_t.to(tl.uint8), mask=live)",
        f"zp = z_t.to({dtype})",
        "count = tl.sum(z_t.to(tl.int32), 0)",
        "tl.debug_barrier()  # the previous step's list has been read",
        "tl.store(spk + b * n + tl.cumsum(z_t.to(tl.int32), 0) - 1, j, mask=z_t)",
        "tl.debug_barrier()",
        "rec = zero",
        "for e in range(0, count):",
        "    i = tl.load(spk + b * n + e).to(tl.int64)",
    ]
    step += [f"    {ln}" for ln in _scatter("rec", "rec", recurrent_dense)]
    body.append("for t in range(0, steps):")
    body += [f"    {ln}" for ln in step]
    header = "\n".join(f"# population {k}: {type(m).__name__}" for k, m in enumerate(models))
    tables = f"# input table: {'dense' if input_dense else 'slots'}; recurrent table: " + (
        "dense" if recurrent_dense else "slots"
    )
    return (
        '"""Generated by neurowire.learning.triton: e-prop forward pass of a hidden layer."""\n'
        f"{header}\n{tables}\n# {ftype}, {_mode()}\n"
        "import triton\nimport triton.language as tl\n\n\n"
        "@triton.jit\n"
        "def forward(\n"
        "    in_crow, in_pre, in_w, in_post, in_len, rec_w, rec_post, rec_len, inv_v_th, scale,\n"
        "    psi, z, cur, spk, batch, steps, n, in_width, rec_width,\n"
        "    BLOCK_N: tl.constexpr, BLOCK_IN: tl.constexpr, BLOCK_REC: tl.constexpr,\n"
        "):\n" + "".join(f"    {ln}\n" for ln in body)
    )


def _block(width: int) -> int:
    return triton.next_power_of_2(max(width, 1))


def forward(events: SpikeEvents, w: Weights, enet, steps: int) -> tuple[Tensor, Tensor]:
    """``(psi [T, B, N], z [T, B, N] uint8)`` for input events on the rows ``t * B + b``, as
    :func:`.native.forward`: time-major views of trial-major ``[B, T, N]`` arrays.

    One program per trial runs the generated kernel (:func:`forward_source`) over all steps.
    """
    check_device(enet.device)
    layer = enet.hidden
    inp, rec = _tables(w, enet)
    pd = layer.pseudo_derivative_constants()
    batch, n = events.n_rows // steps, layer.n
    psi = enet.buffer("psi", (batch, steps, n), enet.dtype)
    z = enet.buffer("z", (batch, steps, n), torch.uint8)
    cur = torch.zeros(batch, n, dtype=enet.dtype, device=enet.device)
    spk = torch.empty(batch, n, dtype=torch.int32, device=enet.device)
    models = tuple(p.model for p in layer.populations)
    kernel = forward_kernel(models, enet.net.dt, enet.dtype, inp.dense, rec.dense)
    kernel[(batch,)](
        events.row_pointers(), events.pre,
        inp.weight.contiguous(), inp.post, inp.length,
        rec.weight.contiguous(), rec.post, rec.length,
        pd["inv_v_th"], pd["psi_scale"],
        psi, z, cur, spk, batch, steps, n, _width(inp), _width(rec),
        BLOCK_N=_block(n), BLOCK_IN=_block(_width(inp)), BLOCK_REC=_block(_width(rec)),
    )  # fmt: skip
    return psi.transpose(0, 1), z.transpose(0, 1)


# ---------------------------------------------------------------------- backward
_BACKWARD_KERNELS: dict[tuple, object] = {}


def backward_kernel(models: tuple, dt: float, dtype: torch.dtype):
    """The ``@triton.jit`` backward kernel of a hidden layer made of ``models`` for ``dtype``
    (see :func:`backward_source`)."""
    key = (models, dt, dtype, _mode())
    if key not in _BACKWARD_KERNELS:
        source = backward_source(models, dt, _ftype(dtype))
        _BACKWARD_KERNELS[key] = generated_module(source, "eprop_backward_triton").backward
    return _BACKWARD_KERNELS[key]


def backward_source(models: tuple, dt: float, ftype: str) -> str:
    """Triton source of ``backward(psi, e_kappa, fb_t, reg, alpha, rho, beta, in_crow, in_pre,
    in_post, in_len, z_crow, z_pre, rec_post, rec_len, g_in, g_rec, g_in1, g_rec1, hbuf, batch,
    steps, n, n_out, in_width, rec_width, BLOCK_N, BLOCK_IN, BLOCK_REC, IN_DENSE, REC_DENSE,
    UNIT)``, one program per trial looping backwards in time (see :func:`backward`); the
    recursions are the models' translated ``eprop_adjoint``, once per run of populations
    sharing it (lanes of other runs kept)."""
    arrays = {"alpha": "al", "rho": "rh", "beta": "be"}
    flush = f"tl.where(tl.abs({{final}}) < {_tiny(ftype)}, 0.0, {{final}})"
    groups = adjoint_groups(models)
    task, unit = [], []
    for g, (model, lo, hi) in enumerate(groups):
        store = "{ref} = " + flush
        if len(groups) > 1:
            store = f"{{ref}} = tl.where((j >= {lo}) & (j < {hi}), {flush}, {{ref}})"
        refs = {"h": "h", "q": "q"}
        task += adjoint_lines(model, dt, ftype, "triton", refs, "p", "lm", arrays, store, f"a{g}_")
        refs = {"h": "h1", "q": "q1"}
        unit += adjoint_lines(model, dt, ftype, "triton", refs, "p", "1.0", arrays, store, f"u{g}_")
    code = BACKWARD_TEMPLATE.lstrip("\n")
    code = code.replace("@ADJOINT@", "\n".join(" " * 8 + ln for ln in task))
    code = code.replace("@UNIT@", "\n".join(" " * 12 + ln for ln in unit))
    return (
        '"""Generated by neurowire.learning.triton: factorised e-prop backward pass."""\n'
        f"# {ftype}, {_mode()}\n"
        "import triton\nimport triton.language as tl\n\n\n" + code.replace("@DTYPE@", f"tl.{ftype}")
    )


BACKWARD_TEMPLATE = """
@triton.jit
def add_h(g, g1, crow, pre, r, post_ptr, length, width, hbuf, b, batch, n, h, h1, j, live,
          DENSE: tl.constexpr, BLOCK: tl.constexpr, UNIT: tl.constexpr):
    # every event of row r adds H_t (h; h1 for Lambda = 1) at its table row's targets
    for e in range(tl.load(crow + r), tl.load(crow + r + 1)):
        i = tl.load(pre + e)
        if DENSE:
            tl.atomic_add(g + i * n + j, h, mask=live)
            if UNIT:
                tl.atomic_add(g1 + i * n + j, h1, mask=live)
        else:  # slot rows gather H_t from this trial's copy in hbuf
            sl = tl.arange(0, BLOCK)
            ok = sl < tl.load(length + i)
            post = tl.load(post_ptr + i * width + sl, mask=ok, other=0)
            hv = tl.load(hbuf + b * n + post, mask=ok, other=0.0)
            tl.atomic_add(g + i * width + sl, hv, mask=ok)
            if UNIT:
                hv = tl.load(hbuf + (batch + b) * n + post, mask=ok, other=0.0)
                tl.atomic_add(g1 + i * width + sl, hv, mask=ok)


@triton.jit
def backward(
    psi, e_kappa, fb_t, reg, alpha, rho, beta,
    in_crow, in_pre, in_post, in_len, z_crow, z_pre, rec_post, rec_len,
    g_in, g_rec, g_in1, g_rec1, hbuf,
    batch, steps, n, n_out, in_width, rec_width,
    BLOCK_N: tl.constexpr, BLOCK_IN: tl.constexpr, BLOCK_REC: tl.constexpr,
    IN_DENSE: tl.constexpr, REC_DENSE: tl.constexpr, UNIT: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK_N)
    live = j < n
    rg = tl.load(reg + j, mask=live, other=0.0)
    al = tl.load(alpha + j, mask=live, other=0.0)
    rh = tl.load(rho + j, mask=live, other=0.0)
    be = tl.load(beta + j, mask=live, other=0.0)
    zero = tl.zeros([BLOCK_N], @DTYPE@)
    h = zero
    q = zero
    h1 = zero
    q1 = zero
    for s in range(0, steps):
        t = steps - 1 - s
        lam = zero  # Lambda_t = B E_kappa,t
        for c in range(0, n_out):
            ek = tl.load(e_kappa + (t * batch + b) * n_out + c)
            lam += ek * tl.load(fb_t + c * n + j, mask=live, other=0.0)
        lm = lam + rg
        p = tl.load(psi + (b * steps + t) * n + j, mask=live, other=0.0)
@ADJOINT@
        if UNIT:
@UNIT@
        if not (IN_DENSE and REC_DENSE):  # slot rows gather H_t from memory
            tl.debug_barrier()  # the previous step's gathers are done
            tl.store(hbuf + b * n + j, h, mask=live)
            if UNIT:
                tl.store(hbuf + (batch + b) * n + j, h1, mask=live)
            tl.debug_barrier()
        r = t * batch + b  # input spikes of step t drive H_t
        add_h(g_in, g_in1, in_crow, in_pre, r, in_post, in_len, in_width, hbuf, b, batch, n,
              h, h1, j, live, IN_DENSE, BLOCK_IN, UNIT)
        if t > 0:  # hidden spikes of step t - 1 drive H_t
            add_h(g_rec, g_rec1, z_crow, z_pre, r - batch, rec_post, rec_len, rec_width, hbuf, b,
                  batch, n, h, h1, j, live, REC_DENSE, BLOCK_REC, UNIT)
"""


def backward(
    psi: Tensor,
    e_kappa: Tensor,
    reg: Tensor | None,
    x_events: SpikeEvents,
    z_events: SpikeEvents,
    w: Weights,
    enet,
    unit: bool,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Gradients of the input and recurrent projections in one pass backwards in time, as
    :func:`.native.backward`: ``psi [T, B, N]``, ``e_kappa [T, B, K]``, ``reg [N]`` or None,
    hidden events ``z_events`` not delayed; returns ``(task, unit)`` by projection name
    (``unit`` empty unless asked). One program per trial; all add into one gradient table.
    """
    check_device(psi.device)
    layer = enet.hidden
    inp, rec = _tables(w, enet)
    steps, batch, n = psi.shape
    dev, dtype = psi.device, psi.dtype
    psi = psi.transpose(0, 1).contiguous()  # [B, T, N]: no copy when it comes from forward()
    g_in = torch.zeros(inp.weight.shape, dtype=dtype, device=dev)
    g_rec = torch.zeros(rec.weight.shape, dtype=dtype, device=dev)
    none = torch.zeros(1, dtype=dtype, device=dev)
    g_in1 = torch.zeros_like(g_in) if unit else none
    g_rec1 = torch.zeros_like(g_rec) if unit else none
    reg = torch.zeros(n, dtype=dtype, device=dev) if reg is None else reg.to(dtype).contiguous()
    fb_t = w.feedback.t().contiguous().to(dtype)
    hbuf = torch.zeros(2 if unit else 1, batch, n, dtype=dtype, device=dev)
    models = tuple(p.model for p in layer.populations)
    backward_kernel(models, enet.net.dt, dtype)[(batch,)](
        psi, e_kappa.contiguous(), fb_t, reg, layer.alpha, layer.rho, layer.beta,
        x_events.row_pointers(), x_events.pre, inp.post, inp.length,
        z_events.row_pointers(), z_events.pre, rec.post, rec.length,
        g_in, g_rec, g_in1, g_rec1, hbuf,
        batch, steps, n, fb_t.shape[0], _width(inp), _width(rec),
        BLOCK_N=_block(n), BLOCK_IN=_block(_width(inp)), BLOCK_REC=_block(_width(rec)),
        IN_DENSE=inp.dense, REC_DENSE=rec.dense, UNIT=unit,
    )  # fmt: skip
    with torch.device(dev):
        task = {**inp.split(g_in), **rec.split(g_rec)}
        if not unit:
            return task, {}
        return task, {**inp.split(g_in1), **rec.split(g_rec1)}
