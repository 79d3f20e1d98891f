"""The technique contract, and the one verb that prepares a trained model for export.

Every train-time technique (pruning, QAT, clustering, distillation, and every
later one: low-rank, layer pruning) follows the same contract, and
``tests/tinycompress/test_technique_contract.py`` checks it for each:

1. **A config value object** (`PruningConfig`, `QATConfig`, `ClusteringConfig`,
   `DistillationConfig`): validates in ``__init__`` (raising the technique's
   `CompressionError` subclass), is flat (a pruning schedule is one nested
   ``{"class_name", "config"}``), and ``Config.from_config(c.get_config()) == c``. Layer choice is the shared
   `layers=` selector (`tinycompress.core.select_layers`); it serializes as names.
2. **``apply(model, config, **context) -> keras.Model``**: the model to
   ``fit`` (the same model for pruning, a wrapped copy for QAT and
   clustering, a `keras.distillation.Distiller` for distillation, which needs
   ``teacher=``). Unsupported layers raise the one `UnsupportedLayerError`
   before anything is built. Model structure is read and rewritten only
   through `tinycompress.core`.
3. **``callbacks(config) -> list[keras.callbacks.Callback]``**: every callback
   is registered, has ``get_config``/``from_config``, and takes its step from
   ``model.optimizer.iterations`` (`optimizer_step`; it counts batches only
   when the model has no optimizer, as a student inside a `Distiller`), or,
   for an epoch rhythm, from the absolute epoch index Keras passes; so a
   ``.keras`` file saved mid-training resumes on the same schedule (Keras
   does not restore a `Distiller`'s compile: compile it again after loading).
   Technique state lives in model variables (masks are the weights' zeros,
   ranges and freeze flags are layer weights, centroids and assignments too).
4. **One export verb, `prepare_for_export(model)`**, for any combination of
   techniques: it returns a new model ready for `tinycompress.convert` /
   `tinycompress.export` and leaves the input untouched. Layers take part by
   defining ``export_layers()`` (what the layer becomes at export, the same
   return values as a `rewrite` replace function); everything else is copied
   from its config, which drops training-time state on variables (pruning
   masks as constraints, slimming regularizers). A `Distiller` becomes its
   prepared student. QAT's `QuantizeWrapper` and `ActivationQuantizer` stay:
   they carry the trained int8 scales that the converter turns into the
   flatbuffer's quantization parameters (stripping them, as `strip_qat` does
   to continue float training, would drop the trained ranges).
5. **Errors in one place**: `tinycompress.errors`.

Each technique package exports ``apply``, ``callbacks`` and ``TECHNIQUE`` (a
`Technique` bundling them with the config class), so code that runs "any
technique" (the contract test, a later budget search) iterates over them.

The older per-technique strip functions remain: `strip_pruning` and
`strip_clustering` give the same model as `prepare_for_export` for their
technique; `strip_qat` is *not* an export step (it returns the float model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from tinycompress.core.rewrite import rewrite
from tinycompress.core.selector import walk_layers

__all__ = ["Technique", "prepare_for_export", "toolkit_layers", "optimizer_step", "EXPORT_HOOK"]

#: Name of the layer method `prepare_for_export` calls.
EXPORT_HOOK = "export_layers"


@dataclass(frozen=True)
class Technique:
    """One technique's contract entry points (see the module docs).

    Attributes:
        name: e.g. ``"pruning"``.
        config: the config value class (``get_config``/``from_config``).
        apply: ``apply(model, config, **context) -> keras.Model`` to fit.
        callbacks: ``callbacks(config) -> list[keras.callbacks.Callback]``.
    """

    name: str
    config: type
    apply: Callable[..., keras.Model]
    callbacks: Callable[[Any], list]


def optimizer_step(model: keras.Model) -> int | None:
    """The training step of `model`: its optimizer's ``iterations``.

    Returns None when the model has no optimizer, as a student inside a
    `keras.distillation.Distiller` (the distiller's optimizer trains it);
    callbacks then count the batches they see.

    Example:
        >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> optimizer_step(m) is None
        True
        >>> m.compile(optimizer="sgd", loss="mse"); optimizer_step(m)
        0
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def _export_replacement(layer: keras.layers.Layer):
    hook = getattr(layer, EXPORT_HOOK, None)
    return hook() if callable(hook) else None


def prepare_for_export(model: keras.Model) -> keras.Model:
    """Return a copy of a trained (compressed) model that is ready to convert and export.

    Args:
        model: a Sequential or Functional model trained with any combination
            of pruning, clustering and QAT, or a `keras.distillation.Distiller`
            (its student is prepared). It is not modified.

    Returns:
        An uncompiled model: clustered layers hold their shared values
        (snapped to the int8 grid `tinycompress.convert` uses), pruning leaves
        only its exact zeros, QAT keeps its trained ranges.

    Raises:
        UnsupportedLayerError: a subclassed model or a Sequential model
            without an input.

    Example:
        >>> import numpy as np
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> m.layers[0].kernel.constraint = lambda w: w * 0.0   # e.g. a pruning mask
        >>> p = prepare_for_export(m)
        >>> p.layers[0].kernel.constraint is None, np.array_equal(p.get_weights()[0], m.get_weights()[0])
        (True, True)
    """
    if isinstance(model, keras.distillation.Distiller):
        model = model.student
    return rewrite(model, _export_replacement)


def toolkit_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers of `model` (wrapped ones and nested models included) defined by tinycompress.

    Example:
        >>> toolkit_layers(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
        []
    """
    return [l for l in walk_layers(model, into_wrappers=True)
            if type(l).__module__.split(".")[0] == "tinycompress"]
