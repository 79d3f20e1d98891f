"""Layer pruning: candidates, exact removal, scores, budgets, config; export after removal (slow)."""

import json

import keras
import numpy as np
import pytest

import tflite_export
import tinycompress
from tinycompress.layer_pruning import (
    LayerPruningConfig,
    LayerPruningError,
    find_candidates,
    macs,
    prune_layers,
    remove_candidates,
)

L = keras.layers
XENT = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _block(x, filters, name, zero=False):
    y = L.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_a")(x)
    y = L.Conv2D(filters, 3, padding="same", name=f"{name}_b",
                 kernel_initializer="zeros" if zero else "glorot_uniform")(y)
    return L.ReLU(name=f"{name}_relu")(L.Add(name=name)([x, y]))


def _resnet(zero_first=False):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="x")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inp)
    x = _block(x, 4, "block1", zero=zero_first)
    x = _block(x, 4, "block2")
    # A projection shortcut: not an identity block.
    y = L.Conv2D(6, 3, strides=2, padding="same", name="down_a")(x)
    x = L.Add(name="down")([L.Conv2D(6, 1, strides=2, name="proj")(x), y])
    out = L.Dense(3, name="head")(L.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inp, out, name="tiny_resnet")


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.random((n, 8, 8, 1)).astype("float32")
    return x, rng.integers(0, 3, n)


def test_candidates_are_identity_blocks_and_shape_preserving_groups():
    found = {(c.name, c.kind): c for c in find_candidates(_resnet())}
    assert ("block1", "residual") in found and ("block2", "residual") in found
    assert ("down", "residual") not in found  # projection shortcut
    assert found["block1", "residual"].layers == ("block1_a", "block1_b", "block1", "block1_relu")
    assert ("block1_b", "layer") in found and ("proj", "layer") not in found
    assert found["block1", "residual"].macs == 2 * 8 * 8 * 9 * 4 * 4
    assert set(c.kind for c in find_candidates(_resnet(), ("residual",))) == {"residual"}


def test_removing_a_block_whose_branch_is_zero_keeps_the_function():
    model = _resnet(zero_first=True)
    block = next(c for c in find_candidates(model) if c.name == "block1")
    pruned = remove_candidates(model, [block])
    names = [l.name for l in pruned.layers]
    assert not {"block1_a", "block1_b", "block1", "block1_relu"} & set(names)
    x, _ = _data(8)
    np.testing.assert_allclose(pruned(x), model(x), atol=1e-6)
    assert macs(model) - macs(pruned) == block.macs
    assert "block1_a" in [l.name for l in model.layers]  # the input is untouched


def test_the_least_important_block_is_removed_first():
    model = _resnet(zero_first=True)
    x, y = _data()
    pruned, report = prune_layers(model, LayerPruningConfig(remove=1, kinds=["residual"]),
                                  validation_data=(x, y), loss=XENT)
    assert [c.name for c in report.removed] == ["block1"]
    assert report.scores[0].candidate.name == "block1" and abs(report.scores[0].loss_increase) < 1e-5
    assert report.macs_after == macs(pruned) and report.params_after == pruned.count_params()
    assert "block1" in str(report)


@pytest.mark.slow
def test_macs_budget_removes_until_it_fits_and_refuses_the_impossible():
    model = _resnet()
    x, y = _data()
    budget = macs(model) - 2 * 8 * 8 * 9 * 4 * 4 - 1  # more than one block's worth
    pruned, report = prune_layers(model, LayerPruningConfig(max_macs=budget),
                                  validation_data=(x, y), loss=XENT)
    assert macs(pruned) <= budget < report.macs_before
    layers = [l for c in report.removed for l in c.layers]
    assert len(layers) == len(set(layers))  # no overlap
    with pytest.raises(LayerPruningError, match="cannot meet"):
        prune_layers(model, LayerPruningConfig(max_macs=10), validation_data=(x, y), loss=XENT)


def test_sequential_layer_groups_are_removed_and_the_model_stays_sequential():
    model = keras.Sequential([keras.Input((6,)), L.Dense(6, name="a"), L.BatchNormalization(name="bn"),
                              L.ReLU(name="r"), L.Dense(6, name="b"), L.Dense(2, name="c")])
    found = find_candidates(model)
    assert [(c.name, c.layers) for c in found] == [("a", ("a", "bn", "r")), ("b", ("b",))]
    pruned = remove_candidates(model, found)
    assert isinstance(pruned, keras.Sequential) and [l.name for l in pruned.layers] == ["c"]
    with pytest.raises(LayerPruningError, match="overlap"):
        remove_candidates(_resnet(), [c for c in find_candidates(_resnet()) if "block1" in c.layers
                                      or c.name == "block1_a"])


def test_no_candidate_is_a_clear_error():
    model = keras.Sequential([keras.Input((4,)), L.Dense(3), L.Dense(2)])
    with pytest.raises(LayerPruningError, match="no removable"):
        prune_layers(model, validation_data=_data(), loss=XENT)


@pytest.mark.parametrize("bad", [dict(remove=0), dict(remove=1, max_macs=5), dict(max_params=-1),
                                 dict(kinds=["blocks"]), dict(kinds=[]), dict(batch_size=0),
                                 dict(remove=True)])
def test_config_validates(bad):
    with pytest.raises(LayerPruningError):
        LayerPruningConfig(**bad)


@pytest.mark.parametrize("config", [LayerPruningConfig(), LayerPruningConfig(max_macs=10, kinds="layer"),
                                    LayerPruningConfig(max_params=99, batch_size=16)])
def test_config_round_trips(config):
    assert LayerPruningConfig.from_config(json.loads(json.dumps(config.get_config()))) == config


@pytest.mark.slow
def test_a_removed_residual_block_builds_trains_and_exports_verified_on_tflm(tmp_path):
    model = _resnet()
    x, y = _data(128)
    pruned, report = prune_layers(model, LayerPruningConfig(remove=1, kinds=["residual"]),
                                  validation_data=(x, y), loss=XENT)
    pruned.compile(optimizer="adam", loss=XENT)
    history = pruned.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    result = tinycompress.export(pruned, x, tmp_path / "out")
    full = tflite_export.inspect(tinycompress.convert(model, x), measure=False)
    # TFLM counts the removed ADD too (one MAC per element): at least the block's conv MACs go.
    assert full.macs - result.report.macs >= report.removed[0].macs
    assert result.verification.max_lsb_diff <= 1 and result.verification.argmax_agreement >= 0.9
    assert (tmp_path / "out").is_dir()
