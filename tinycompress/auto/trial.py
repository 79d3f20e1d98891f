"""One trial's measurements, and `TrialRecord`, what the search keeps of every trial.

Every figure is measured on the built model: accuracy of the int8 (or
int16x8) model on the TFLM interpreter over the validation data (run in a
child process), flash and ``kTensorArenaSize`` from `tinycompress.build`,
MACs from its report, latency and energy from the device cost model
(`tflite_export.cost`, an estimate with its relative error) when a device
is given.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tinycompress.errors import BudgetError

__all__ = ["TrialRecord", "measure", "screen", "tflm_scores", "cost_metrics", "cost_model", "STATES"]

#: Trial states as recorded: Optuna's COMPLETE, PRUNED, FAIL, RUNNING, WAITING.
STATES = ("complete", "pruned", "failed", "running", "waiting")
#: Training samples the converter calibrates on.
CALIBRATION_SAMPLES = 256


def cost_model(device: str | None, needed: bool):
    """The device cost model's ``estimate`` function, or None when no device is given.

    Raises:
        BudgetError: a latency/energy figure is needed without a device, or
            the cost model (`tflite_export.cost`) is not installed.
    """
    if device is None:
        if needed:
            raise BudgetError("a latency or energy budget (or objective) needs a device: pass "
                              "device=<board> (--device), whose cost model estimates them.")
        return None
    try:
        module = importlib.import_module("tflite_export.cost")
    except ImportError as e:
        raise BudgetError(f"device={device!r} needs the device cost model tflite_export.cost, "
                          f"which this installation lacks ({e}); drop the device and the latency "
                          "and energy budgets.") from e
    if hasattr(module, "get_device"):
        module.get_device(device)  # an unknown board fails now, not in every trial
    return module.estimate


@dataclass
class TrialRecord:
    """What the search recorded of one trial.

    Attributes:
        number: Optuna's trial number (continues over resumed runs and workers).
        state: one of `STATES`.
        params: the sampled parameters.
        recipe: the `Recipe` config the trial ran (None if it failed before).
        metrics: measured figures: ``accuracy`` and ``loss`` (TFLM, see
            `tflm_scores`), ``flash_bytes``,
            ``arena_bytes`` (``kTensorArenaSize``), ``arena_host_bytes``,
            ``macs``, ``float_accuracy`` (Keras, before conversion) and, with a
            device, ``latency_ms``, ``energy_uj`` (None when the device's power
            is unknown, and both None when the estimate leaves operators out),
            ``cost_rel_error`` and ``cost_unknown_ops`` (those operators).
        feasible: whether the budget is met (measured).
        violations: readable lines of what exceeds the budget.
        failure: ``"ErrorClass: message"`` for a failed trial, else None.
        duration_s: wall time of the trial.
        intermediate: ``{epoch step: float validation accuracy}`` reported while fine-tuning.
        duplicate_of: the earlier trial with the same parameters whose measurements
            this one reuses (nothing was trained or built again), or None.
        screening: how the trial was screened against the budget before fine-tuning
            (see `screen`): ``{"sampled": channel sparsity sampled, "ran": the one
            run (None when nothing fitted), "builds": untrained builds made, "fits":
            whether one fitted}``, with ``"sampled_weights"`` and ``"ran_weights"``
            (unstructured sparsity) for a recipe that encodes; or an empty dict when
            the budget bounds nothing a shape decides.
    """

    number: int
    state: str
    params: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    feasible: bool = False
    violations: list[str] = field(default_factory=list)
    failure: str | None = None
    duration_s: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    duplicate_of: int | None = None
    screening: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, trial) -> TrialRecord:
        """The record of an Optuna `FrozenTrial` (fields kept in its user attributes)."""
        attrs = trial.user_attrs
        state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed",
                 "RUNNING": "running", "WAITING": "waiting"}[trial.state.name]
        return cls(number=trial.number, state=state, params=dict(trial.params),
                   recipe=attrs.get("recipe"), metrics=dict(attrs.get("metrics", {})),
                   feasible=bool(attrs.get("feasible", False)), violations=list(attrs.get("violations", [])),
                   failure=attrs.get("failure"), duration_s=attrs.get("duration_s"),
                   intermediate={int(k): float(v) for k, v in trial.intermediate_values.items()},
                   duplicate_of=attrs.get("duplicate_of"), screening=dict(attrs.get("screening", {})))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def measure(prepared, recipe, x_calibration: np.ndarray, val: tuple[np.ndarray, np.ndarray], *,
            arena_budget: int | None = None, estimate=None, device: str | None = None,
            verify_samples: int = 32, name: str = "model", target: str | None = None):
    """Build a prepared model as ``recipe`` says and measure it.

    Args:
        prepared: the model `apply_recipe` returned.
        recipe: its `Recipe` (build options).
        x_calibration: calibration samples.
        val: ``(x, labels)`` on which the TFLM accuracy is measured.
        arena_budget: ``encode_arena_budget`` for encoding recipes. Default None.
        estimate: the cost model's ``estimate`` (see `cost_model`). Default None.
        device: its device name. Default None.
        verify_samples: samples verified by `build` (as `tinycompress.export`). Default 32.
        name: model name (C identifiers). Default "model".
        target: firmware project to render. Default None.

    Returns:
        ``(BuildResult, metrics dict)`` (see `TrialRecord.metrics`).

    Raises:
        TinyCompressError: conversion, verification or TFLM failed.
    """
    from tinycompress.auto._stages import float_accuracy
    from tinycompress.auto.recipe import ends_in_softmax
    from tinycompress.build import build

    built = build(prepared, x_calibration[:CALIBRATION_SAMPLES], name=name, target=target,
                  verify_samples=min(verify_samples, len(x_calibration)),
                  **recipe.build_options(arena_budget=arena_budget))
    accuracy, loss = tflm_scores(built.model, *val, probabilities=ends_in_softmax(prepared))
    metrics: dict[str, Any] = {
        "accuracy": accuracy,
        "loss": loss,
        "float_accuracy": float_accuracy(prepared, *val),
        "flash_bytes": len(built.model),
        "arena_bytes": int(built.arena.emitted_bytes),
        "arena_host_bytes": int(built.arena.host_bytes),
        "macs": int(built.report.macs),
    }
    if estimate is not None:
        metrics.update(cost_metrics(estimate(built.model, device)))
    return built, metrics


def tflm_scores(model: bytes, x: np.ndarray, labels: np.ndarray, *,
                probabilities: bool) -> tuple[float, float]:
    """Accuracy and cross-entropy of a classifier run on the TFLM interpreter.

    Accuracy moves in steps of one sample (1.9 points on 54 validation series), so
    equally accurate trials are common; the mean cross-entropy of the dequantized
    outputs still orders them (the search breaks ties with it).

    Args:
        model: `.tflite` flatbuffer bytes with one input and one output.
        x: float samples (quantized here with the model's input scale).
        labels: integer class labels, one per sample.
        probabilities: whether the outputs are softmax probabilities (else logits).
            A probability is floored at half the output's quantization step, the
            least nonzero value int8 can tell apart from 0.

    Returns:
        ``(accuracy, mean cross-entropy in nats)``.

    Raises:
        RuntimeCheckError: TFLM failed, crashed or timed out (see `tflite_export.run_tflm`).

    Example:
        >>> import numpy as np, tflite_export
        >>> m = tflite_export.testing.tiny_model()
        >>> accuracy, loss = tflm_scores(m, np.zeros((2, 4), np.float32), np.array([0, 1]),
        ...                              probabilities=False)
        >>> 0.0 <= accuracy <= 1.0 and loss > 0
        True
    """
    from tflite_export.io_details import output_details
    from tflite_export.runtime import classifier_outputs

    labels = np.asarray(labels).reshape(-1)
    y = classifier_outputs(model, x).astype(np.float64)
    if probabilities:
        scale = output_details(model)[0].scale
        p = np.clip(y, scale / 2 if scale > 0 else 1e-7, None)
        log_p = np.log(p / p.sum(-1, keepdims=True))
    else:
        shifted = y - y.max(-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    accuracy = float(np.mean(np.argmax(y, -1) == labels))
    return accuracy, float(-np.mean(log_p[np.arange(len(labels)), labels]))


def cost_metrics(cost) -> dict[str, Any]:
    """The trial metrics of a cost-model estimate (see `TrialRecord.metrics`).

    Totals that leave operators out are not the model's latency or energy: they are
    recorded as not measured (None), so a latency or energy budget is not met by them.

    Example:
        >>> from types import SimpleNamespace
        >>> e = SimpleNamespace(total_ms=0.0, total_uj=0.0, rel_error=0.3, unknown_ops=("TANH",))
        >>> cost_metrics(e)["latency_ms"] is None
        True
    """
    unknown = list(getattr(cost, "unknown_ops", ()))
    return {"latency_ms": None if unknown else float(cost.total_ms),
            "energy_uj": None if unknown or cost.total_uj is None else float(cost.total_uj),
            "cost_rel_error": float(cost.rel_error), "cost_unknown_ops": unknown}


def screen(model, recipe, train: tuple[np.ndarray, np.ndarray], *, arena_budget: int | None = None,
           estimate=None, device: str | None = None) -> dict[str, Any]:
    """The figures a model's shapes decide, measured on ``recipe`` run without fine-tuning.

    Flash, ``kTensorArenaSize``, MACs, latency and energy depend on the layer shapes, the
    weight sharing and the encodings, not on the trained values (DECODE's prune and
    Huffman sizes move a little with them), so a trial is checked against its budget
    with this build before it spends its fine-tuning.

    Args:
        model: the trained model `search` starts from.
        recipe: the trial's `Recipe`.
        train: ``(x, labels)`` training data: layer pruning scores its candidates
            on it as the fine-tuned run does; the first samples calibrate.
        arena_budget, estimate, device: as in `measure`.

    Returns:
        The metrics of `measure` without ``accuracy`` and ``float_accuracy``; for
        a recipe that encodes under ``arena_budget`` but needs more arena before
        encoding, those of its unencoded build (whose arena is over the budget).

    Raises:
        TinyCompressError: a technique refused the model, or conversion failed.

    Example:
        >>> import keras, numpy as np
        >>> from tinycompress.auto import Recipe
        >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="relu"),
        ...                       keras.layers.Dense(3)])
        >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
        >>> big, small = (screen(m, Recipe(channel_sparsity=s), (x, np.argmax(x[:, :3], 1)))["flash_bytes"]
        ...               for s in (0.0, 0.75))
        >>> small < big
        True
    """
    from tinycompress.auto.recipe import apply_recipe
    from tinycompress.build import build

    from tflite_export.encode import ArenaBudgetError

    prepared = apply_recipe(model, recipe, train, fine_tune=False)
    options = recipe.build_options(arena_budget=arena_budget)
    try:
        built = build(prepared, train[0][:CALIBRATION_SAMPLES], verify_samples=1, **options)
    except ArenaBudgetError:  # over the arena before encoding (which only adds arena): its
        options.update(encode=False, encode_arena_budget=None)  # unencoded figures say so
        built = build(prepared, train[0][:CALIBRATION_SAMPLES], verify_samples=1, **options)
    metrics: dict[str, Any] = {"flash_bytes": len(built.model), "arena_bytes": int(built.arena.emitted_bytes),
                               "arena_host_bytes": int(built.arena.host_bytes), "macs": int(built.report.macs)}
    if estimate is not None:
        metrics.update(cost_metrics(estimate(built.model, device)))
    return metrics
