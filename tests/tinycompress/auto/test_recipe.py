"""`apply_recipe` stages and the sensitivity scan behind per-layer pruning ratios."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tinycompress
from tinycompress.auto import Recipe, allocate, apply_recipe, channel_sensitivity
from tinycompress.core import toolkit_layers
from tinycompress.errors import AutoError


def _mlp(last_activation=None) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu", name="a"),
                             keras.layers.Dense(32, activation="relu", name="b"),
                             keras.layers.Dense(3, activation=last_activation, name="head")])


def _data(n=64):
    x = np.random.default_rng(0).normal(size=(n, 8)).astype("float32")
    return x, np.argmax(x[:, :3], axis=1)


def test_per_layer_ratios_shrink_each_layer_by_its_own_ratio():
    model = _mlp()
    recipe = Recipe(channel_sparsity=0.5, layer_sparsity={"a": 0.75, "b": 0.25}, epochs=0)
    small = apply_recipe(model, recipe, _data())
    assert [small.get_layer(n).units for n in ("a", "b", "head")] == [8, 24, 3]
    assert model.get_layer("a").units == 32 and toolkit_layers(small) == []


def test_a_uniform_ratio_keeps_the_output_layer():
    small = apply_recipe(_mlp(), Recipe(channel_sparsity=0.5, epochs=0), _data())
    assert [layer.units for layer in small.layers] == [16, 16, 3]


@pytest.mark.parametrize("layers, factored", [("dense", ["fc"]), ("all", ["conv", "fc", "head"])])
def test_low_rank_factors_the_layers_the_recipe_names(layers, factored):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 4)), keras.layers.Conv1D(24, 3, name="conv"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(48, name="fc"),
                              keras.layers.Dense(40, name="head")])
    recipe = Recipe(lowrank_energy=0.5, lowrank_layers=layers, epochs=0)
    x = np.random.default_rng(0).normal(size=(32, 16, 4)).astype("float32")
    small = apply_recipe(model, recipe, (x, np.zeros(32, "int64")))
    names = [layer.name for layer in small.layers]
    assert [n for n in ("conv", "fc", "head") if f"{n}_lr1" in names] == factored
    assert all(n in names for n in ("conv", "fc", "head") if n not in factored)


def test_dense_low_rank_without_a_hidden_dense_layer_factors_nothing():
    small = apply_recipe(keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, name="head")]),
                         Recipe(lowrank_energy=0.5, lowrank_layers="dense", epochs=0), _data())
    assert [layer.name for layer in small.layers] == ["head"]


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_each_fine_tuning_steps_at_the_rate_its_schedule_gives(schedule):
    from tinycompress.auto import _stages

    rates = []

    class Rate(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    recipe = Recipe(learning_rate=1e-2, learning_rate_schedule=schedule, batch_size=16, epochs=2)
    model = _mlp()
    _stages._Trainer(recipe, _data(), None, None, 0).fit(model, 2, [Rate()], _stages._loss(model))
    steps = 2 * 64 // 16
    expected = [1e-2 * (0.5 * (1 + np.cos(np.pi * k / steps)) if schedule == "cosine" else 1) for k in range(steps)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)
    after = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert after == pytest.approx(0.0 if schedule == "cosine" else 1e-2, abs=1e-9)


def test_distillation_needs_logits():
    with pytest.raises(AutoError, match="ends in softmax"):
        apply_recipe(_mlp("softmax"), Recipe(distill=True, epochs=0), _data())


def test_allocation_keeps_the_mean_and_favours_robust_layers():
    ratios = allocate(0.4, {"a": 0.01, "b": 0.1, "c": 0.3})
    assert ratios["a"] > ratios["b"] > ratios["c"] and np.mean(list(ratios.values())) == pytest.approx(0.4, abs=0.01)
    assert allocate(0.0, {"a": 0.1}) == {"a": 0.0} and allocate(0.5, {}) == {}


@pytest.mark.slow
def test_sensitivity_is_measured_and_reproducible(tiny_task):
    model, _, val = tiny_task
    first = channel_sensitivity(model, val)
    assert sorted(first) == ["a", "b"] and all(0.0 <= d <= 1.0 for d in first.values())
    assert max(first.values()) > 0  # half of a trained layer's channels cost accuracy
    assert channel_sensitivity(model, val) == first


@pytest.mark.slow
def test_every_stage_runs_and_the_result_builds(tiny_task):
    model, train, val = tiny_task
    recipe = Recipe(layers_removed=1, lowrank_energy=0.9, channel_sparsity=0.25, distill=True,
                    temperature=2.0, cluster_bits=4, epochs=1, encode=True)
    steps = []
    prepared = apply_recipe(model, recipe, train, val_data=val, on_epoch=lambda s, a: steps.append((s, a)))
    assert [s for s, _ in steps] == [0, 1] and all(0 <= a <= 1 for _, a in steps)
    assert prepared.count_params() < model.count_params() and toolkit_layers(prepared) == []
    built = tinycompress.build(prepared, train[0][:128], **recipe.build_options(arena_budget=8192))
    assert built.encoding is not None and len(built.model) < len(tinycompress.build(model, train[0][:128]).model)


@pytest.mark.slow
def test_weight_sparsity_zeros_survive_clustering_and_pay_through_the_prune_encoding(tiny_task):
    model, train, _ = tiny_task
    recipe = Recipe(channel_sparsity=0.25, weight_sparsity=0.7, cluster_bits=4, epochs=1, encode=True)
    prepared = apply_recipe(model, recipe, train)
    for layer in prepared.layers:
        kernel = layer.get_weights()[0]
        assert np.mean(kernel == 0) >= 0.69  # the pruned share, kept through clustering
        assert len(np.unique(kernel)) <= 16
    dense = apply_recipe(model, Recipe(channel_sparsity=0.25, cluster_bits=4, epochs=1, encode=True), train)
    sparse_bytes, dense_bytes = (len(tinycompress.build(m, train[0][:128], encode="auto").model)
                                 for m in (prepared, dense))
    assert sparse_bytes < dense_bytes
