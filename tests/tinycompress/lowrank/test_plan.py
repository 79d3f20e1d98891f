"""Rank choice (energy, budget, explicit), non-saving layers, the config value object."""

import keras
import numpy as np
import pytest

from tinycompress.errors import UnsupportedLayerError
from tinycompress.lowrank import LowRankConfig, LowRankError, factorize, plan, rank_for_energy, spectrum

L = keras.layers


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((10, 10, 8)),
        L.Conv2D(16, 3, activation="relu", name="conv"),
        L.Conv2D(16, 1, name="pointwise"),
        L.Flatten(name="flat"),
        L.Dense(64, activation="relu", name="fc1"),
        L.Dense(4, name="fc2"),
    ], name="net")


def test_energy_rule_picks_the_smallest_rank_keeping_the_energy():
    model = _model()
    report = plan(model, LowRankConfig(energy=0.6, tucker=False))
    rows = {r.name: r for r in report.layers}
    for layer in model.layers:
        if layer.name not in rows or rows[layer.name].method == "kept":
            continue
        s = spectrum(layer).svd
        assert rows[layer.name].rank == (rank_for_energy(s, 0.6),)
        assert rows[layer.name].energy >= 0.6
    assert rows["fc1"].method == "svd"
    small, _ = factorize(model, LowRankConfig(energy=0.6, tucker=False))
    assert small.count_params() == report.params_after < model.count_params()


def test_non_saving_layers_are_left_alone_and_reported():
    model = _model()
    report = plan(model, LowRankConfig(energy=1.0))
    # At full energy no layer of random weights saves: all kept, each with its bound.
    assert report.factored == () and report.params_after == report.params_before
    assert all("m n / (m + n)" in r.reason for r in report.kept)
    fc2 = spectrum(model.get_layer("fc2"))
    bound = fc2.m * fc2.n / (fc2.m + fc2.n)  # 1296 * 4 / 1300 < 4: rank 4 does not save
    assert bound < 4
    small, report = factorize(model, LowRankConfig(ranks={"fc2": 4, "fc1": 8}))
    assert [r.name for r in report.kept] == ["fc2"] and [r.name for r in report.factored] == ["fc1"]
    assert "fc2" in [l.name for l in small.layers]


def test_budget_rule_meets_the_whole_model_budget():
    model = _model()
    total = model.count_params()
    for budget in (total // 2, total // 4):
        report = plan(model, LowRankConfig(max_params=budget))
        small, _ = factorize(model, LowRankConfig(max_params=budget))
        assert small.count_params() == report.params_after <= budget
        # The budget is nearly spent: one more rank step would overshoot or is absent.
        assert report.params_after > budget * 0.8
    with pytest.raises(LowRankError, match="cannot be met"):
        plan(model, LowRankConfig(max_params=100))


def test_explicit_ranks_and_tucker_choice():
    model = _model()
    report = plan(model, LowRankConfig(ranks={"fc1": 5, "conv": (3, 4)}))
    rows = {r.name: r for r in report.layers}
    assert set(rows) == {"fc1", "conv"}
    assert (rows["fc1"].method, rows["fc1"].rank) == ("svd", (5,))
    assert (rows["conv"].method, rows["conv"].rank) == ("tucker2", (3, 4))
    assert rows["conv"].params_after == 8 * 3 + 9 * 3 * 4 + 4 * 16
    with pytest.raises(LowRankError, match="at most"):
        plan(model, LowRankConfig(ranks={"fc1": 65}))
    with pytest.raises(LowRankError, match="kernel larger than 1"):
        plan(model, LowRankConfig(ranks={"pointwise": (2, 2)}))


def test_unfactorable_named_layer_is_refused_before_building():
    model = keras.Sequential([keras.Input((6, 6, 2)), L.DepthwiseConv2D(3, name="dw"),
                              L.Flatten(), L.Dense(3, name="d")])
    with pytest.raises(UnsupportedLayerError, match="dw"):
        factorize(model, LowRankConfig(layers=["dw"]))
    with pytest.raises(LowRankError, match="No layer named"):
        factorize(model, LowRankConfig(ranks={"nope": 2}))
    # Selected by default, an unfactorable layer is simply not a candidate.
    assert [r.name for r in plan(model, LowRankConfig()).layers] == ["d"]


@pytest.mark.parametrize("bad", [dict(energy=0.0), dict(energy=1.5), dict(max_params=0),
                                 dict(energy=0.9, max_params=10), dict(ranks={"a": 0}),
                                 dict(ranks={"a": (1, 2, 3)}), dict(ranks={}), dict(tucker=1)])
def test_config_validates(bad):
    with pytest.raises(LowRankError):
        LowRankConfig(**bad)


@pytest.mark.parametrize("config", [LowRankConfig(), LowRankConfig(energy=0.8, layers=["a", "b"]),
                                    LowRankConfig(max_params=1000, tucker=False),
                                    LowRankConfig(ranks={"a": 3, "b": [2, 4]})])
def test_config_round_trips(config):
    import json
    again = LowRankConfig.from_config(json.loads(json.dumps(config.get_config())))
    assert again == config


def test_factored_model_saves_and_reloads(tmp_path):
    model = _model()
    small, _ = factorize(model, LowRankConfig(ranks={"fc1": 6, "conv": (4, 4)}))
    path = tmp_path / "small.keras"
    small.save(path)
    again = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 10, 10, 8)).astype("float32")
    np.testing.assert_array_equal(again(x), small(x))
