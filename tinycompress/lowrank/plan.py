"""Choose each layer's rank (energy, whole-model budget or explicit) and report the plan."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from tinycompress.core import LayerGraph, select_layers
from tinycompress.errors import UnsupportedLayerError
from tinycompress.lowrank.config import LowRankConfig, LowRankError
from tinycompress.lowrank.factor import FACTORABLE_TYPES, Spectrum, rank_for_energy, spectrum

__all__ = ["LayerRank", "LowRankReport", "plan"]


@dataclass(frozen=True)
class LayerRank:
    """What happens to one selected layer.

    Attributes:
        name: the layer's name.
        method: ``"svd"``, ``"tucker2"`` or ``"kept"`` (left alone).
        rank: ``(r,)`` for SVD, ``(r_in, r_out)`` for Tucker-2, ``()`` when kept.
        params_before: kernel parameters of the layer.
        params_after: kernel parameters of its factors (= before when kept).
        energy: kept fraction of the squared singular values (1.0 when kept).
        reason: why a layer was kept ("" when factored).
    """

    name: str
    method: str
    rank: tuple[int, ...]
    params_before: int
    params_after: int
    energy: float
    reason: str = ""


@dataclass(frozen=True)
class LowRankReport:
    """The factorization plan of a model.

    Attributes:
        layers: one `LayerRank` per selected layer, in model order.
        params_before: parameters of the whole model.
        params_after: parameters after factoring (biases and other layers unchanged).
    """

    layers: tuple[LayerRank, ...]
    params_before: int
    params_after: int

    @property
    def factored(self) -> tuple[LayerRank, ...]:
        """The layers that are factored."""
        return tuple(l for l in self.layers if l.method != "kept")

    @property
    def kept(self) -> tuple[LayerRank, ...]:
        """The selected layers left alone (see each `reason`)."""
        return tuple(l for l in self.layers if l.method == "kept")

    def __str__(self) -> str:
        rows = [f"{'layer':<20} {'method':<8} {'rank':<10} {'params':>17} {'energy':>7}  note"]
        for l in self.layers:
            rank = "x".join(map(str, l.rank)) or "-"
            rows.append(f"{l.name:<20} {l.method:<8} {rank:<10} "
                        f"{l.params_before:>8}->{l.params_after:<8} {l.energy:>7.4f}  {l.reason}")
        rows.append(f"model parameters: {self.params_before} -> {self.params_after}")
        return "\n".join(rows)


def _energy(values: np.ndarray, rank: int) -> float:
    power = values.astype(np.float64) ** 2
    return float(power[:rank].sum() / power.sum()) if power.sum() > 0 else 1.0


def _kept(spec: Spectrum, reason: str) -> LayerRank:
    return LayerRank(spec.name, "kept", (), spec.params, spec.params, 1.0, reason)


def _svd(spec: Spectrum, r: int) -> LayerRank:
    return LayerRank(spec.name, "svd", (r,), spec.params, spec.svd_params(r), _energy(spec.svd, r))


def _no_saving(spec: Spectrum, what: str, params: int) -> LayerRank:
    return _kept(spec, f"{what} needs {params} >= {spec.params} kernel parameters (SVD saves only "
                       f"for r < m n / (m + n) = {spec.params / (spec.m + spec.n):.1f})")


def _tucker(spec: Spectrum, r_in: int, r_out: int, layer) -> LayerRank:
    params = spec.tucker_params(r_in, r_out)
    if layer is None:  # a budget search only needs the parameter count
        return LayerRank(spec.name, "tucker2", (r_in, r_out), spec.params, params, float("nan"))
    w = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64)
    u_in = np.linalg.svd(np.moveaxis(w, -2, 0).reshape(w.shape[-2], -1), full_matrices=False)[0]
    u_out = np.linalg.svd(np.moveaxis(w, -1, 0).reshape(w.shape[-1], -1), full_matrices=False)[0]
    core = np.einsum("...io,ia,ob->...ab", w, u_in[:, :r_in], u_out[:, :r_out])
    total = float((w ** 2).sum())
    energy = float((core ** 2).sum()) / total if total > 0 else 1.0
    return LayerRank(spec.name, "tucker2", (r_in, r_out), spec.params, params, energy)


def _at_energy(spec: Spectrum, energy: float, tucker: bool, layer) -> LayerRank:
    r = rank_for_energy(spec.svd, energy)
    best = (spec.svd_params(r), "svd")
    if tucker and spec.mode_in is not None:
        r_in, r_out = rank_for_energy(spec.mode_in, energy), rank_for_energy(spec.mode_out, energy)
        if spec.tucker_params(r_in, r_out) < best[0]:
            best = (spec.tucker_params(r_in, r_out), "tucker2")
    if best[0] >= spec.params:
        return _no_saving(spec, f"rank {r} (energy {energy:g})", best[0])
    if best[1] == "svd":
        return _svd(spec, r)
    return _tucker(spec, r_in, r_out, layer)


def _explicit(spec: Spectrum, rank, layer) -> LayerRank:
    if isinstance(rank, tuple):
        if spec.mode_in is None:
            raise LowRankError(f"Tucker-2 ranks {rank} need a convolution with a kernel larger "
                               f"than 1; layer {spec.name!r} is not one. Give an int rank.")
        c_in = spec.m // spec.taps
        if rank[0] > c_in or rank[1] > spec.n:
            raise LowRankError(f"Tucker-2 ranks of layer {spec.name!r} must be at most "
                               f"({c_in}, {spec.n}). Received: {rank}.")
        params = spec.tucker_params(*rank)
        if params >= spec.params:
            return _no_saving(spec, f"Tucker-2 ranks {rank}", params)
        return _tucker(spec, rank[0], rank[1], layer)
    if rank > min(spec.m, spec.n):
        raise LowRankError(f"the rank of layer {spec.name!r} must be at most {min(spec.m, spec.n)}. "
                           f"Received: {rank}.")
    if spec.svd_params(rank) >= spec.params:
        return _no_saving(spec, f"rank {rank}", spec.svd_params(rank))
    return _svd(spec, rank)


def _budget(specs: list[Spectrum], layers, tucker: bool, fixed: int, budget: int) -> list[LayerRank]:
    def total(energy: float) -> int:
        return fixed + sum(_at_energy(s, energy, tucker, None).params_after for s in specs)

    low, high = 0.0, 1.0
    smallest = total(1e-9)  # rank 1 everywhere (or the layer kept where rank 1 does not save)
    if smallest > budget:
        raise LowRankError(
            f"max_params={budget} cannot be met: rank 1 in every selected layer leaves "
            f"{smallest} parameters. Raise the budget or select more layers (or prune first)."
        )
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if total(mid) <= budget else (low, mid)
    return [_at_energy(s, low, tucker, l) for s, l in zip(specs, layers)]


def _selected(model: keras.Model, config: LowRankConfig) -> list[keras.layers.Layer]:
    selector = config.layers
    if selector is None and config.ranks is not None:
        selector = tuple(config.ranks)
    chosen = select_layers(model, selector, verb="factored",
                           error=LowRankError)
    explicit = config.ranks is not None or config.layers is not None
    bad = [l for l in chosen if type(l) not in FACTORABLE_TYPES]
    if bad and explicit and not callable(config.layers):
        raise UnsupportedLayerError(
            f"layers {[l.name for l in bad]} ({[type(l).__name__ for l in bad]}) cannot be "
            f"factored: expected Dense, Conv1D or Conv2D. Leave them out of `layers=`/`ranks=`."
        )
    return [l for l in chosen if type(l) in FACTORABLE_TYPES]


def plan(model: keras.Model, config: LowRankConfig) -> LowRankReport:
    """Decide the rank of every selected layer without changing `model`.

    Args:
        model: a built Sequential or Functional model.
        config: a `LowRankConfig`.

    Returns:
        A `LowRankReport` (per layer: method, rank, kernel parameters before
        and after, kept energy, and why a layer is left alone).

    Raises:
        LowRankError: nothing selected, a named layer missing, a rank out
            of range, or a budget no rank can meet.
        UnsupportedLayerError: a subclassed model, or a selected layer that
            cannot be factored (class, groups, data format).

    Example:
        >>> m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, name="a"),
        ...                       keras.layers.Dense(2, name="b")])
        >>> r = plan(m, LowRankConfig(ranks={"a": 8, "b": 2}))
        >>> [(l.name, l.method, l.rank) for l in r.layers]
        [('a', 'svd', (8,)), ('b', 'kept', ())]
        >>> r.params_before - r.params_after == 64 * 64 - 8 * 128
        True
    """
    LayerGraph(model)  # a subclassed model (no graph to rewrite) is refused first
    layers = _selected(model, config)
    specs = [spectrum(l) for l in layers]
    if config.ranks is not None:
        rows = [_explicit(s, config.ranks[l.name], l) if l.name in config.ranks
                else _kept(s, "no rank given") for s, l in zip(specs, layers)]
    elif config.max_params is not None:
        fixed = model.count_params() - sum(s.params for s in specs)
        rows = _budget(specs, layers, config.tucker, fixed, config.max_params)
    else:
        rows = [_at_energy(s, config.energy, config.tucker, l) for s, l in zip(specs, layers)]
    before = model.count_params()
    after = before - sum(r.params_before - r.params_after for r in rows)
    return LowRankReport(tuple(rows), before, after)
