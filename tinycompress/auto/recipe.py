"""`Recipe`: one combination of compression techniques, and `apply_recipe`, which runs it.

A recipe is what the search samples and what it hands back for the winner: a
flat value object that round-trips through ``get_config``/``from_config`` and
a JSON file, so the winning model can be made again without searching
(`apply_recipe`, then `tinycompress.build` with `Recipe.build_options`).

`apply_recipe` runs the techniques through their contract entry points
(`tinycompress.core.technique`) in stages, each on the previous stage's
prepared model:

1. structure: layer pruning (least important candidates), low-rank
   factorization (singular-value energy), structured channel pruning (one
   ratio per layer, the output layer kept) fine-tuned for ``epochs`` epochs,
   from labels or distilled from the original model; then `shrink` removes
   the pruned channels;
2. sparsity: unstructured pruning of the remaining kernels (``weight_sparsity``),
   fine-tuned for ``max(1, epochs // 2)`` epochs; the zeros pay only through
   DECODE's prune encoding, so it comes with ``encode``;
3. weight sharing: clustering (``cluster_bits``, keeping the zeros) or QAT,
   fine-tuned for ``max(1, epochs // 2)`` epochs. Clustering and QAT both
   train the weights, so a recipe uses one of them.

The int8/int16x8 choice and the DECODE encodings are build options
(`Recipe.build_options`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from tinycompress.errors import AutoError, DataError

__all__ = ["Recipe", "apply_recipe", "check_labelled", "ends_in_softmax", "MODES", "LOWRANK_LAYERS",
           "LEARNING_RATE_SCHEDULES"]

#: Which layers the low-rank stage factors: every layer `tinycompress.lowrank` supports,
#: or only the Dense layers before the output layer (where a CNN keeps most of its weights).
LOWRANK_LAYERS = ("all", "dense")
#: Conversion modes a recipe may ask for.
MODES = ("int8", "int16x8")
#: How each fine-tuning's learning rate moves: held, or decayed to 0 along a cosine over
#: that fine-tuning's steps (`keras.optimizers.schedules.CosineDecay`).
LEARNING_RATE_SCHEDULES = ("constant", "cosine")


def _check_range(name: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise AutoError(f"recipe field {name} must be {'an integer' if integer else 'a number'} "
                        f"in [{low}, {high}]. Received: {name}={value!r}.")


@dataclass(frozen=True)
class Recipe:
    """One combination of techniques and settings (see the module docs for the order).

    Args:
        layers_removed: layer-pruning candidates removed (least important first). Default 0.
        lowrank_energy: kept singular-value energy of low-rank factorization in
            (0, 1), or None (no factorization). Default None.
        lowrank_layers: the layers factored: ``"all"`` (every Dense and Conv layer
            `tinycompress.lowrank` supports) or ``"dense"`` (the Dense layers
            before the output layer; none there: nothing is factored). Default "all".
        channel_sparsity: fraction of channels pruned in each hidden Dense/conv
            layer, in [0, 0.95]. Default 0.0.
        layer_sparsity: ``{layer name: ratio}`` per-layer channel-pruning ratios
            (from a sensitivity scan) used instead of ``channel_sparsity`` for the
            layers it names (``channel_sparsity`` is then their mean and applies to
            hidden layers it does not name, such as low-rank factors). Default None.
        weight_sparsity: fraction of the weights of every kernel pruned
            (unstructured) after the structure stage, in [0, 0.95]. Default 0.0.
        distill: fine-tune the structure stage by distillation from the
            original model (needs a model that outputs logits). Default False.
        temperature: distillation temperature. Default 4.0.
        distill_weight: weight of the label loss in distillation, in [0, 1]. Default 0.1.
        epochs: fine-tuning epochs of the structure stage. Default 1.
        qat: quantization-aware fine-tuning (int8 only). Default False.
        cluster_bits: clustering index width 2..7, or None (no clustering). Default None.
        mode: ``"int8"`` or ``"int16x8"`` conversion. Default "int8".
        encode: DECODE-encode weights (LUT, sparse, Huffman) at build. Default False.
        learning_rate: Adam learning rate of every fine-tuning. Default 1e-3.
        learning_rate_schedule: ``"constant"`` (every step at ``learning_rate``) or
            ``"cosine"`` (each fine-tuning starts at ``learning_rate`` and decays it to 0
            by its last step). Default "constant"; a search's recipes take
            `SearchSpace.learning_rate_schedule`, "cosine" by default.
        batch_size: fine-tuning batch size. Default 32.
        seed: seed of every random choice (weights order, shuffling). Default 0.

    Raises:
        AutoError: a value out of range, or QAT with clustering or with int16x8.

    Example:
        >>> r = Recipe(channel_sparsity=0.5, cluster_bits=4, encode=True)
        >>> Recipe.from_config(r.get_config()) == r, r.build_options(arena_budget=4096)
        (True, {'mode': 'int8', 'encode': 'auto', 'encode_arena_budget': 4096})
        >>> r.techniques()
        ['pruning', 'clustering']
    """

    layers_removed: int = 0
    lowrank_energy: float | None = None
    lowrank_layers: str = "all"
    channel_sparsity: float = 0.0
    layer_sparsity: dict[str, float] | None = None
    weight_sparsity: float = 0.0
    distill: bool = False
    temperature: float = 4.0
    distill_weight: float = 0.1
    epochs: int = 1
    qat: bool = False
    cluster_bits: int | None = None
    mode: str = "int8"
    encode: bool = False
    learning_rate: float = 1e-3
    learning_rate_schedule: str = "constant"
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        _check_range("layers_removed", self.layers_removed, 0, 1000, integer=True)
        if self.lowrank_energy is not None:
            _check_range("lowrank_energy", self.lowrank_energy, 1e-6, 0.999999)
        _check_range("channel_sparsity", self.channel_sparsity, 0.0, 0.95)
        _check_range("weight_sparsity", self.weight_sparsity, 0.0, 0.95)
        if self.layer_sparsity is not None:
            if not isinstance(self.layer_sparsity, dict):
                raise AutoError(f"recipe field layer_sparsity must be a dict {{layer name: ratio}}. "
                                f"Received: {self.layer_sparsity!r}.")
            for name, ratio in self.layer_sparsity.items():
                _check_range(f"layer_sparsity[{name!r}]", ratio, 0.0, 0.95)
        _check_range("temperature", self.temperature, 1e-3, 1e3)
        _check_range("distill_weight", self.distill_weight, 0.0, 1.0)
        _check_range("epochs", self.epochs, 0, 10_000, integer=True)
        if self.cluster_bits is not None:
            _check_range("cluster_bits", self.cluster_bits, 2, 7, integer=True)
        _check_range("learning_rate", self.learning_rate, 1e-9, 10.0)
        _check_range("batch_size", self.batch_size, 1, 1 << 20, integer=True)
        _check_range("seed", self.seed, 0, 2 ** 32 - 1, integer=True)
        for flag in ("distill", "qat", "encode"):
            if not isinstance(getattr(self, flag), bool):
                raise AutoError(f"recipe field {flag} must be True or False. "
                                f"Received: {flag}={getattr(self, flag)!r}.")
        if self.lowrank_layers not in LOWRANK_LAYERS:
            raise AutoError(f"recipe field lowrank_layers must be one of {LOWRANK_LAYERS}. "
                            f"Received: lowrank_layers={self.lowrank_layers!r}.")
        if self.learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
            raise AutoError(f"recipe field learning_rate_schedule must be one of {LEARNING_RATE_SCHEDULES}. "
                            f"Received: learning_rate_schedule={self.learning_rate_schedule!r}.")
        if self.mode not in MODES:
            raise AutoError(f"recipe field mode must be one of {MODES}. Received: mode={self.mode!r}.")
        if self.qat and self.cluster_bits is not None:
            raise AutoError("a recipe uses QAT or clustering, not both (both train the weights): "
                            "set qat=False or cluster_bits=None.")
        if self.qat and self.mode != "int8":
            raise AutoError("QAT simulates int8 inference: use mode='int8' or qat=False.")

    def techniques(self) -> list[str]:
        """Names of the techniques the recipe uses (`Technique.name`), in stage order."""
        used = [("layer_pruning", self.layers_removed > 0), ("lowrank", self.lowrank_energy is not None),
                ("pruning", self.channel_sparsity > 0 or self.weight_sparsity > 0), ("distillation", self.distill),
                ("clustering", self.cluster_bits is not None), ("quantization", self.qat)]
        return [name for name, on in used if on]

    def build_options(self, *, arena_budget: int | None = None) -> dict[str, Any]:
        """The `tinycompress.build` keywords of this recipe (``mode``, ``encode``,
        ``encode_arena_budget`` when encoding under an arena budget)."""
        options: dict[str, Any] = {"mode": self.mode, "encode": "auto" if self.encode else False}
        if self.encode and arena_budget is not None:
            options["encode_arena_budget"] = int(arena_budget)
        return options

    def get_config(self) -> dict[str, Any]:
        """The fields as a flat dictionary (``layer_sparsity`` is the one nested mapping)."""
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Recipe:
        """Rebuild from `get_config`'s dictionary.

        Raises:
            AutoError: an unknown field (named) or a bad value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise AutoError(f"unknown recipe field(s) {unknown}; known: {sorted(known)}.")
        return cls(**config)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the recipe as JSON (``{"recipe": config}``); returns the path."""
        path = Path(path)
        path.write_text(json.dumps({"recipe": self.get_config()}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recipe:
        """Read a recipe written by `save` (or a ``recipe.json`` of a search).

        Raises:
            AutoError: the file is missing, not JSON, or holds no valid recipe.
        """
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise AutoError(f"cannot read recipe file {str(path)!r} ({e}); pass a recipe.json "
                            "written by tinycompress auto.") from e
        if not isinstance(data, dict) or not isinstance(data.get("recipe"), dict):
            raise AutoError(f"recipe file {str(path)!r} has no 'recipe' object.")
        return cls.from_config(data["recipe"])


def check_labelled(data: Any, what: str, model=None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, labels)`` arrays from ``data`` = ``(x, y)`` with integer or one-hot labels.

    Args:
        data: the pair.
        what: its name in messages.
        model: the single-input Keras model the samples are for (their shape is checked
            against its input). Default None: not checked.

    Raises:
        DataError: not a pair of arrays with one label per sample, or samples of
            another shape than the model's input.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise DataError(f"expected {what} as a pair (x, y) of arrays. Received: {type(data).__name__}.")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if y.ndim == 2 and y.shape[1] > 1:
        y = np.argmax(y, axis=1)
    y = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    if len(x) != len(y) or len(x) == 0:
        raise DataError(f"{what}: expected as many labels as samples (> 0). Received {len(x)} "
                        f"samples and {len(y)} labels.")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise DataError(f"{what}: expected integer class labels (or one-hot rows). Received "
                        f"dtype {y.dtype}.")
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) == 1:
        want = tuple(inputs[0].shape[1:])
        if len(want) != x.ndim - 1 or any(w is not None and w != g for w, g in zip(want, x.shape[1:])):
            shape = ", ".join(["n"] + ["?" if w is None else str(w) for w in want])
            raise DataError(f"{what}: samples have shape {tuple(x.shape[1:])}, but model {model.name!r} "
                            f"takes arrays of shape ({shape}); give data of the model's input shape.")
    return x.astype("float32"), y.astype("int64")


def ends_in_softmax(model) -> bool:
    """Whether the model's last layer applies a softmax (its outputs are probabilities)."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"


def apply_recipe(
    model,
    recipe: Recipe,
    train_data: Any,
    *,
    val_data: Any = None,
    on_epoch: Callable[[int, float], None] | None = None,
    verbose: int = 0,
    fine_tune: bool = True,
):
    """Run ``recipe`` on a trained model and return the model to build (see the module docs).

    Args:
        model: the trained Keras classifier (Sequential or Functional); not modified.
        recipe: a `Recipe`.
        train_data: ``(x, y)`` arrays, integer or one-hot labels.
        val_data: ``(x, y)`` for ``on_epoch``. Default None.
        on_epoch: called after every fine-tuning epoch as ``on_epoch(step, accuracy)``
            with the float model's accuracy on ``val_data`` (``step`` counts epochs
            over all stages); it may raise to stop (the search prunes trials so).
            Default None.
        verbose: Keras `fit` verbosity. Default 0.
        fine_tune: False trains nothing: the result has the recipe's shapes and
            weight sharing (pruned channels removed, clustered weights) but not its
            accuracy, and QAT is left out (it changes no size). The search screens a
            trial's flash, arena, MACs and latency so before spending its
            fine-tuning. Default True.

    Returns:
        An uncompiled Keras model ready for `tinycompress.build` with
        ``**recipe.build_options(...)``.

    Raises:
        AutoError: distillation asked for a model that ends in softmax.
        DataError: bad data.
        CompressionError: a technique refused the model (e.g. fewer layer-pruning
            candidates than ``layers_removed``).

    Example:
        >>> import keras, numpy as np
        >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
        ...                       keras.layers.Dense(3)])
        >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
        >>> y = np.argmax(x[:, :3], axis=1)
        >>> small = apply_recipe(m, Recipe(channel_sparsity=0.5, epochs=1), (x, y))
        >>> small.layers[0].units
        8
    """
    from tinycompress.auto import _stages

    return _stages.run(model, recipe, check_labelled(train_data, "train_data", model),
                       None if val_data is None else check_labelled(val_data, "val_data", model),
                       on_epoch, verbose, fine_tune)
