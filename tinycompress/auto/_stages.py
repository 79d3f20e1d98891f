"""The training stages of `apply_recipe` (Keras side; see `tinycompress.auto.recipe`)."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from tinycompress import clustering, distillation, layer_pruning, lowrank, pruning, quantization
from tinycompress.auto.recipe import Recipe, ends_in_softmax
from tinycompress.core import prepare_for_export, rewrite
from tinycompress.errors import AutoError

__all__ = ["run", "float_accuracy", "hidden_prunable"]

_SCORE_SAMPLES = 512


def float_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Argmax accuracy of a Keras model (a `Distiller`'s student is used as is)."""
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=256), -1) == y))


class _EpochReport(keras.callbacks.Callback):
    """Calls ``on_epoch(step, accuracy)`` with the student's float accuracy after each epoch."""

    def __init__(self, student, val, on_epoch, first_step: int) -> None:
        super().__init__()
        self.student, self.val, self.on_epoch, self.step = student, val, on_epoch, first_step

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.on_epoch(self.step, float_accuracy(self.student, *self.val))
        self.step += 1


def _loss(model: keras.Model):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(model))


def _steps_per_epoch(train, recipe: Recipe) -> int:
    """Batches of one fine-tuning epoch over ``train``."""
    return max(1, -(-len(train[0]) // recipe.batch_size))


def _copy(model: keras.Model) -> keras.Model:
    return rewrite(model)


def hidden_prunable(model: keras.Model) -> list[str]:
    """Prunable layers except the last one (whose channels are the model's outputs)."""
    names = [layer.name for layer in pruning.select_layers(model)]
    return names[:-1]


def _ratio_groups(recipe: Recipe, model: keras.Model) -> dict[float, list[str]]:
    """Channel-pruning ratio -> layers: the recipe's per-layer ratio of each hidden layer, or
    ``channel_sparsity`` for a layer it does not name (e.g. made by an earlier stage)."""
    named = recipe.layer_sparsity or {}
    groups: dict[float, list[str]] = {}
    for name in hidden_prunable(model):
        ratio = named.get(name, recipe.channel_sparsity)
        if ratio > 0:
            groups.setdefault(ratio, []).append(name)
    return groups


def _prune_now(model: keras.Model, callbacks: list) -> None:
    """Without fine-tuning (0 epochs): apply the pruning callbacks' masks once, train nothing."""
    pruners = [c for c in callbacks if isinstance(c, pruning.PruningCallback)]
    if not pruners:
        return
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    for callback in pruners:
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_train_batch_begin(0)
        callback.on_train_end()


class _Trainer:
    """Fine-tunes stage after stage, counting epochs for `on_epoch`; with ``dry`` it trains
    nothing (pruning masks are applied once, as with 0 epochs)."""

    def __init__(self, recipe: Recipe, train, val, on_epoch, verbose: int, dry: bool = False) -> None:
        self.recipe, self.train, self.val, self.on_epoch, self.verbose = recipe, train, val, on_epoch, verbose
        self.step, self.dry = 0, dry

    def _callbacks(self, student, extra: list) -> list:
        if self.on_epoch is None or self.val is None:
            return list(extra)
        return [*extra, _EpochReport(student, self.val, self.on_epoch, self.step)]

    def _optimizer(self, epochs: int) -> keras.optimizers.Optimizer:
        """Adam for one fine-tuning of ``epochs`` epochs, its rate held or decayed to 0 by the
        last step (``recipe.learning_rate_schedule``)."""
        rate = self.recipe.learning_rate
        if self.recipe.learning_rate_schedule == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(
                rate, decay_steps=epochs * _steps_per_epoch(self.train, self.recipe))
        return keras.optimizers.Adam(rate)

    def fit(self, model, epochs: int, callbacks: list, loss) -> None:
        if epochs < 1 or self.dry:
            _prune_now(model, callbacks)
            return
        model.compile(optimizer=self._optimizer(epochs), loss=loss)
        model.fit(*self.train, epochs=epochs, batch_size=self.recipe.batch_size, verbose=self.verbose,
                  callbacks=self._callbacks(model, callbacks))
        self.step += epochs

    def distill(self, teacher, student, epochs: int, callbacks: list) -> None:
        if epochs < 1 or self.dry:
            _prune_now(student, callbacks)
            return
        wrapped = [distillation.StudentCallback(c) for c in callbacks]
        distillation.distill(teacher, student, *self.train, epochs=epochs, batch_size=self.recipe.batch_size,
                             optimizer=self._optimizer(epochs),
                             callbacks=self._callbacks(student, wrapped), verbose=self.verbose,
                             temperature=self.recipe.temperature,
                             student_loss_weight=self.recipe.distill_weight)
        self.step += epochs


def _factored(model: keras.Model, recipe: Recipe) -> keras.Model:
    """The low-rank step: the layers ``recipe.lowrank_layers`` names, factored by energy."""
    layers = None
    if recipe.lowrank_layers == "dense":
        layers = [name for name in hidden_prunable(model) if isinstance(model.get_layer(name), keras.layers.Dense)]
        if not layers:
            return model
    return lowrank.apply(model, lowrank.LowRankConfig(energy=recipe.lowrank_energy, layers=layers))


def _structure(model, recipe: Recipe, train, trainer: _Trainer):
    """Stage 1: layer pruning, low-rank, channel pruning; fine-tune (or distill); shrink."""
    loss = _loss(model)
    student = _copy(model)
    if recipe.layers_removed:
        n = min(len(train[0]), _SCORE_SAMPLES)
        config = layer_pruning.LayerPruningConfig(remove=recipe.layers_removed)
        student = layer_pruning.apply(student, config, validation_data=(train[0][:n], train[1][:n]), loss=loss)
    if recipe.lowrank_energy is not None:
        student = _factored(student, recipe)
    callbacks = []
    if recipe.channel_sparsity > 0:
        steps = _steps_per_epoch(train, recipe)
        for ratio, names in _ratio_groups(recipe, student).items():
            config = pruning.PruningConfig(pruning.ConstantSparsity(ratio, frequency=steps),
                                           layers=names, granularity="channel")
            student = pruning.apply(student, config)
            callbacks += pruning.callbacks(config, log_summary=False)
    changed = recipe.layers_removed or recipe.lowrank_energy is not None or recipe.channel_sparsity > 0
    if recipe.distill:
        if ends_in_softmax(model):
            raise AutoError("distillation needs a model that outputs logits; this one ends in softmax "
                            "(drop the softmax, or leave distillation out of the search space).")
        trainer.distill(model, student, recipe.epochs, callbacks)
    elif changed:
        trainer.fit(student, recipe.epochs, callbacks, loss)  # 0 epochs: pruned without fine-tuning
    student = prepare_for_export(student)
    return pruning.shrink(student) if recipe.channel_sparsity > 0 else student


def run(model, recipe: Recipe, train, val, on_epoch: Callable[[int, float], None] | None, verbose: int,
        fine_tune: bool = True):
    """All stages of ``recipe`` (see `tinycompress.auto.recipe`); without ``fine_tune`` nothing
    is trained and QAT (which changes no shape or size) is left out."""
    keras.utils.set_random_seed(recipe.seed)
    trainer = _Trainer(recipe, train, val, on_epoch, verbose, dry=not fine_tune)
    student = _structure(model, recipe, train, trainer)
    second = max(1, recipe.epochs // 2)
    if recipe.weight_sparsity > 0:
        steps = _steps_per_epoch(train, recipe)
        config = pruning.PruningConfig(pruning.ConstantSparsity(recipe.weight_sparsity, frequency=steps))
        sparse = pruning.apply(student, config)
        trainer.fit(sparse, second, pruning.callbacks(config, log_summary=False), _loss(model))
        student = prepare_for_export(sparse)
    if recipe.cluster_bits is not None:
        config = clustering.ClusteringConfig(bits=recipe.cluster_bits, seed=recipe.seed)
        clustered = clustering.apply(student, config)
        trainer.fit(clustered, second, clustering.callbacks(config), _loss(model))
        student = prepare_for_export(clustered)
    if recipe.qat and fine_tune:
        config = quantization.QATConfig()
        quantized = quantization.apply(student, config)
        trainer.fit(quantized, second, quantization.callbacks(config), _loss(model))
        student = prepare_for_export(quantized)
    return student
