"""`SearchSpace`: which techniques the search combines, and over which ranges.

The space has one *knob* per technique of the contract (`KNOBS`, keyed by
`Technique.name`: every technique package's ``TECHNIQUE``) plus the two build
options (`BUILD_KNOBS`: int16x8 conversion, DECODE encodings). A knob turns a
technique on or off in a trial and samples its settings; a new technique
joins the search by adding its knob (a test checks that every technique has
one). A user restricts the space with ``techniques=`` and the ranges.

Clustering and QAT both train the weights, so a trial picks one of them
(parameter ``weights``); int16x8 trials never use QAT.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tinycompress.auto.recipe import LOWRANK_LAYERS, Recipe
from tinycompress.auto.sensitivity import allocate
from tinycompress.errors import AutoError

__all__ = ["SearchSpace", "KNOBS", "BUILD_KNOBS"]

_LOG = logging.getLogger(__name__)

#: Grid steps of the channel and (unstructured) weight sparsity parameters; screening
#: raises a trial's sparsities on the same grids.
CHANNEL_STEP = 0.05
WEIGHT_STEP = 0.1
#: Grid step of the kept singular-value energy of low-rank trials.
ENERGY_STEP = 0.05


def _grid(trial, name: str, low: float, high: float, step: float) -> float:
    """``trial``'s value of ``name`` on the grid of ``step`` from ``low``, rounded (Optuna
    returns ``low + k * step``: 0.30000000000000004 for 0.3)."""
    return round(trial.suggest_float(name, low, high, step=step), 10)


def _layer_pruning(trial, s: SearchSpace) -> dict:
    low, high = s.layers_removed
    return {"layers_removed": trial.suggest_int("layers_removed", low, high)} if high > 0 else {}


def _lowrank(trial, s: SearchSpace) -> dict:
    if not trial.suggest_categorical("lowrank", [False, True]):
        return {}
    return {"lowrank_energy": _grid(trial, "lowrank_energy", *s.lowrank_energy, ENERGY_STEP),
            "lowrank_layers": trial.suggest_categorical("lowrank_layers", list(LOWRANK_LAYERS))}


def _pruning(trial, s: SearchSpace) -> dict:
    sparsity = _grid(trial, "channel_sparsity", *s.channel_sparsity, CHANNEL_STEP)
    fields_ = {"channel_sparsity": sparsity}
    if s.sensitivity and sparsity > 0 and \
            trial.suggest_categorical("pruning_allocation", ["uniform", "sensitivity"]) == "sensitivity":
        fields_["layer_sparsity"] = allocate(sparsity, s.sensitivity)
    return fields_


def _distillation(trial, s: SearchSpace) -> dict:
    if not trial.suggest_categorical("distill", [False, True]):
        return {}
    return {"distill": True,
            "temperature": trial.suggest_float("temperature", *s.temperature, log=True),
            "distill_weight": trial.suggest_float("distill_weight", *s.distill_weight)}


def _weights(trial, s: SearchSpace, mode: str) -> dict:
    """Clustering or QAT (or neither): one parameter per mode, as int16x8 has no QAT."""
    options = ["none"]
    if "clustering" in s.techniques:
        options.append("cluster")
    if "quantization" in s.techniques and mode == "int8":
        options.append("qat")
    if len(options) == 1:
        return {}
    choice = trial.suggest_categorical(f"weights_{mode}", options)
    if choice == "cluster":
        return {"cluster_bits": trial.suggest_int("cluster_bits", *s.cluster_bits)}
    return {"qat": choice == "qat"}


def _mode(trial, s: SearchSpace) -> dict:
    return {"mode": trial.suggest_categorical("mode", ["int8", "int16x8"])}


def _encode(trial, s: SearchSpace) -> dict:
    """DECODE encodings, and with them unstructured sparsity (zeros pay only when encoded)."""
    if not trial.suggest_categorical("encode", [False, True]):
        return {"encode": False}
    if "pruning" not in s.techniques or s.weight_sparsity[1] == 0:
        return {"encode": True}
    return {"encode": True,
            "weight_sparsity": _grid(trial, "weight_sparsity", *s.weight_sparsity, WEIGHT_STEP)}


#: Technique name -> ``knob(trial, space) -> Recipe fields`` (clustering and
#: quantization share `_weights`, called once after the mode is known).
KNOBS: dict[str, Callable[..., dict] | None] = {
    "layer_pruning": _layer_pruning,
    "lowrank": _lowrank,
    "pruning": _pruning,
    "distillation": _distillation,
    "clustering": None,
    "quantization": None,
}
#: Build options searched like techniques.
BUILD_KNOBS: dict[str, Callable[..., dict]] = {"int16x8": _mode, "encode": _encode}
_ALL = (*KNOBS, *BUILD_KNOBS)


#: Families of recipes a model-based search runs right after the baseline, before it samples
#: (`SearchSpace.starts`): the hand-made recipes of the project's benches (bench/_auto_hand.py),
#: as parameters of the space. Each names the techniques it needs; sparsities start at half
#: the channels and screening raises them until the budget is met.
_CLUSTERED = {"channel_sparsity": 0.5, "weights_int8": "cluster", "cluster_bits": 4, "encode": True}
_STARTS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("pruning",), {"channel_sparsity": 0.5}),
    (("pruning", "lowrank"), {"channel_sparsity": 0.5, "lowrank": True, "lowrank_layers": "dense",
                              "lowrank_energy": 0.8}),
    (("pruning", "clustering", "encode"), {**_CLUSTERED, "weight_sparsity": 0.0}),
    (("pruning", "clustering", "encode"), {**_CLUSTERED, "weight_sparsity": 0.7}),
)


def _on_grid(value: float, low: float, high: float, step: float) -> float | int:
    """``value`` clipped to ``[low, high]`` and snapped to the grid of ``step`` from ``low``."""
    value = min(max(value, low), high)
    return round(low + min(round((value - low) / step), int((high - low) / step + 1e-6)) * step, 10)


def _pair(name: str, value: Any, low: float, high: float, integer: bool = False) -> tuple:
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int if integer else (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or not low <= value[0] <= value[1] <= high:
        raise AutoError(f"SearchSpace.{name} must be a pair (low, high) with {low} <= low <= high <= "
                        f"{high}. Received: {name}={value!r}.")
    return tuple(value)


@dataclass(frozen=True)
class SearchSpace:
    """The techniques and ranges a search samples.

    Args:
        techniques: names to combine, a subset of ``("layer_pruning", "lowrank",
            "pruning", "distillation", "clustering", "quantization", "int16x8",
            "encode")``. Default all ("pruning" is structured channel pruning;
            "quantization" is QAT).
        layers_removed: ``(low, high)`` layer-pruning candidates to remove.
            Default None: 0 up to min(2, candidates of the model).
        lowrank_energy: kept singular-value energy range. Default (0.5, 0.95).
            Trials also choose which layers to factor (parameter ``lowrank_layers``:
            every supported layer, or the Dense layers before the output layer).
        channel_sparsity: channels pruned per hidden layer. Default (0.0, 0.75).
        weight_sparsity: unstructured sparsity of every kernel, sampled (in
            steps of 0.1) for trials that encode. Default (0.0, 0.9).
        cluster_bits: clustering index widths. Default (2, 6).
        temperature: distillation temperatures (sampled log-uniformly). Default (1.0, 8.0).
        distill_weight: label-loss weights in distillation. Default (0.0, 0.5).
        epochs: fine-tuning epochs of the structure stage. Default (1, 3).
        learning_rate: Adam learning rate of every fine-tuning. Default 1e-3.
        learning_rate_schedule: the trials' `Recipe.learning_rate_schedule`:
            ``"cosine"`` decays each fine-tuning's rate to 0 by its last step, ``"constant"``
            holds it. Default "cosine": on LeNet-5 with MNIST, recipes of channel pruning,
            low-rank and clustering fine-tuned for 8 epochs ended 0.25-0.6 points more
            accurate on TFLM than at a constant rate.
        batch_size: fine-tuning batch size. Default 32.
        sensitivity: ``{layer: accuracy drop}`` of a channel-pruning sensitivity
            scan (`tinycompress.auto.sensitivity.channel_sensitivity`); with it,
            trials also try per-layer ratios (parameter ``pruning_allocation``).
            Default None (`search` measures it when pruning is searched). Not part
            of the config: it is measured from the model.

    Raises:
        AutoError: an unknown technique (named with the known ones) or a bad range.

    Example:
        >>> s = SearchSpace(techniques=["pruning", "clustering"], channel_sparsity=(0.25, 0.5))
        >>> s.techniques, SearchSpace.from_config(s.get_config()) == s
        (('pruning', 'clustering'), True)
    """

    techniques: tuple[str, ...] = _ALL
    layers_removed: tuple[int, int] | None = None
    lowrank_energy: tuple[float, float] = (0.5, 0.95)
    channel_sparsity: tuple[float, float] = (0.0, 0.75)
    weight_sparsity: tuple[float, float] = (0.0, 0.9)
    cluster_bits: tuple[int, int] = (2, 6)
    temperature: tuple[float, float] = (1.0, 8.0)
    distill_weight: tuple[float, float] = (0.0, 0.5)
    epochs: tuple[int, int] = (1, 3)
    learning_rate: float = 1e-3
    learning_rate_schedule: str = "cosine"
    batch_size: int = 32
    sensitivity: dict[str, float] | None = field(default=None, repr=False, compare=False)
    _dropped: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        names = (self.techniques,) if isinstance(self.techniques, str) else tuple(self.techniques)
        unknown = [n for n in names if n not in _ALL]
        if unknown or not names:
            raise AutoError(f"unknown technique(s) {unknown} in SearchSpace(techniques=...); choose "
                            f"from {list(_ALL)}.")
        object.__setattr__(self, "techniques", tuple(dict.fromkeys(names)))
        if self.layers_removed is not None:
            object.__setattr__(self, "layers_removed", _pair("layers_removed", self.layers_removed,
                                                             0, 1000, True))
        for name, low, high, integer in (("lowrank_energy", 0.01, 0.99, False),
                                         ("channel_sparsity", 0.0, 0.95, False),
                                         ("weight_sparsity", 0.0, 0.95, False),
                                         ("cluster_bits", 2, 7, True), ("temperature", 0.01, 100, False),
                                         ("distill_weight", 0.0, 1.0, False), ("epochs", 0, 1000, True)):
            object.__setattr__(self, name, _pair(name, getattr(self, name), low, high, integer))
        Recipe(learning_rate=self.learning_rate, learning_rate_schedule=self.learning_rate_schedule,
               batch_size=self.batch_size)  # validates the three

    def fit_to(self, model, *, candidates: int, logits: bool,
               sensitivity: dict[str, float] | None = None) -> SearchSpace:
        """This space narrowed to what ``model`` allows (logged): layer pruning
        bounded by its ``candidates`` (when the range is the default), distillation
        only for a model that outputs ``logits``, and its measured channel-pruning
        ``sensitivity`` (when given) for per-layer ratios."""
        techniques, dropped = list(self.techniques), []
        layers = self.layers_removed or (0, min(2, candidates))
        if "layer_pruning" in techniques and layers[1] == 0:
            techniques.remove("layer_pruning")
            dropped.append("layer_pruning (no removable layer or block)")
        if "distillation" in techniques and not logits:
            techniques.remove("distillation")
            dropped.append("distillation (the model ends in softmax; distillation needs logits)")
        for reason in dropped:
            _LOG.info("search space of %s: without %s", model.name, reason)
        if not techniques:
            raise AutoError(f"nothing left to search for model {model.name!r}: {'; '.join(dropped)}.")
        return replace(self, techniques=tuple(techniques), layers_removed=layers, _dropped=tuple(dropped),
                       sensitivity=sensitivity if sensitivity is not None else self.sensitivity)

    def suggest(self, trial, *, seed: int = 0) -> Recipe:
        """Sample one `Recipe` from an Optuna trial (parameter names are stable across trials)."""
        fields_: dict[str, Any] = {"learning_rate": self.learning_rate, "batch_size": self.batch_size,
                                   "learning_rate_schedule": self.learning_rate_schedule, "seed": seed}
        for name, knob in KNOBS.items():
            if knob is not None and name in self.techniques:
                fields_.update(knob(trial, self))
        for name, knob in BUILD_KNOBS.items():
            if name in self.techniques:
                fields_.update(knob(trial, self))
        structural = any(fields_.get(k) for k in ("layers_removed", "lowrank_energy",
                                                  "channel_sparsity", "weight_sparsity", "distill"))
        fields_.update(_weights(trial, self, fields_.get("mode", "int8")))
        if structural or fields_.get("cluster_bits") or fields_.get("qat"):
            fields_["epochs"] = trial.suggest_int("epochs", *self.epochs)
        else:
            fields_["epochs"] = 0
        return Recipe(**fields_)

    def baseline(self) -> dict[str, Any]:
        """Parameters of the least compressed trial of the space (every technique off, or at
        the low end of its range): the search runs it first, so the report shows what the
        original model costs."""
        on = self.techniques
        params: dict[str, Any] = {"layers_removed": (self.layers_removed or (0, 0))[0]} \
            if "layer_pruning" in on else {}
        params.update({"lowrank": False} if "lowrank" in on else {})
        params.update({"channel_sparsity": self.channel_sparsity[0], "pruning_allocation": "uniform"}
                      if "pruning" in on else {})
        params.update({"distill": False} if "distillation" in on else {})
        params.update({"mode": "int8"} if "int16x8" in on else {})
        params.update({"encode": False} if "encode" in on else {})
        if "clustering" in on or "quantization" in on:
            params["weights_int8"] = "none"
        params["epochs"] = self.epochs[0]
        return params

    def starts(self) -> list[dict[str, Any]]:
        """Parameters of the trials a model-based search (TPE) runs after the `baseline`, before
        it samples: one per family of recipes the project's benches found best by hand (channel
        pruning; with low-rank Dense layers; with 4-bit clusters, encoded; Deep Compression's
        unstructured zeros, clusters and encodings), each at the space's longest fine-tuning and
        with its values brought into the space's ranges. Families that need a technique outside
        the space, or that the ranges make equal to the baseline or to an earlier start, are left
        out. With few trials, random start-up draws may try none of these combinations; TPE
        then models the space from them.

        Example:
            >>> [p["channel_sparsity"] for p in SearchSpace(techniques=["pruning", "lowrank"],
            ...                                              channel_sparsity=(0.0, 0.3)).starts()]
            [0.3, 0.3]
        """
        base = self.baseline()
        ranges = {"channel_sparsity": (*self.channel_sparsity, CHANNEL_STEP),
                  "weight_sparsity": (*self.weight_sparsity, WEIGHT_STEP),
                  "lowrank_energy": (*self.lowrank_energy, ENERGY_STEP), "cluster_bits": (*self.cluster_bits, 1)}
        starts: list[dict[str, Any]] = []
        for needs, family in _STARTS:
            if not set(needs) <= set(self.techniques):
                continue
            params = {**base, **{k: _on_grid(v, *ranges[k]) if k in ranges else v for k, v in family.items()},
                      "epochs": self.epochs[1]}
            if "weight_sparsity" in params and self.weight_sparsity[1] == 0:
                del params["weight_sparsity"]  # the space samples none (see _encode)
            if all({**p, "epochs": 0} != {**params, "epochs": 0} for p in [base, *starts]):
                starts.append(params)
        return starts

    def get_config(self) -> dict[str, Any]:
        """The settings as a flat dictionary (pairs as lists)."""
        config = asdict(self)
        config.pop("_dropped")
        config.pop("sensitivity")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SearchSpace:
        """Rebuild from `get_config`'s dictionary."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
