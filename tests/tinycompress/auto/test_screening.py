"""Screening: a trial's budget is checked on its untrained build before fine-tuning.

The flash of each screened build is measured again here (`screen`), so the
properties hold on bytes, not on the search's own bookkeeping.
"""

from __future__ import annotations

import pytest

from tinycompress.auto import Budget, Recipe, SearchSpace, apply_recipe, search
from tinycompress.auto.trial import screen
from tinycompress.build import build
from tinycompress.errors import NoFeasibleModelError


@pytest.mark.slow
def test_untrained_build_has_the_trained_models_size(tiny_task):
    model, train, _ = tiny_task
    recipe = Recipe(channel_sparsity=0.5, cluster_bits=3, epochs=1)
    screened = screen(model, recipe, train)
    trained = build(apply_recipe(model, recipe, train), train[0][:256])
    assert screened["flash_bytes"] == len(trained.model)
    assert screened["arena_bytes"] == trained.arena.emitted_bytes and screened["macs"] == trained.report.macs


@pytest.mark.slow
def test_a_trial_over_the_budget_runs_at_the_least_sparsity_that_fits(tiny_task):
    model, train, val = tiny_task
    space = SearchSpace(techniques=["pruning"], channel_sparsity=(0.0, 0.9), epochs=(1, 1), sensitivity={})
    flash = screen(model, Recipe(channel_sparsity=0.6), train)["flash_bytes"]
    budget = Budget(flash_bytes=flash)  # 0.6 fits; 0.55 and below do not (sizes grow with channels)
    assert screen(model, Recipe(channel_sparsity=0.55), train)["flash_bytes"] > flash
    result = search(model, train, val, budget, space=space, n_trials=3, seed=0)
    baseline, *sampled = result.trials
    assert baseline.state == "pruned" and baseline.screening["fits"] is False  # the model as it is
    assert baseline.metrics["flash_bytes"] > flash and baseline.intermediate == {}
    for t in sampled:
        assert t.state == "complete" and t.feasible and t.screening["fits"]
        ran = t.recipe["channel_sparsity"]
        assert ran == max(0.6, t.screening["sampled"]) and ran == t.screening["ran"]
        assert t.metrics["flash_bytes"] <= flash and t.recipe["epochs"] == 1
    # TPE's start (half the channels) and a random draw of the same: the second reuses the first
    twins = [t for t in sampled if t.duplicate_of is not None]
    assert twins and all(t.screening == {**result.trials[t.duplicate_of].screening, "builds": 0} for t in twins)


@pytest.mark.slow
def test_a_budget_no_sparsity_meets_is_refused_before_any_fine_tuning(tiny_task):
    model, train, val = tiny_task
    space = SearchSpace(techniques=["pruning"], channel_sparsity=(0.0, 0.5), epochs=(1, 1), sensitivity={})
    smallest = screen(model, Recipe(channel_sparsity=0.5), train)["flash_bytes"]
    with pytest.raises(NoFeasibleModelError, match="flash") as caught:
        search(model, train, val, Budget(flash_bytes=smallest - 1), space=space, n_trials=2, seed=0)
    trials = caught.value.result.trials
    assert [t.state for t in trials] == ["pruned", "pruned"]
    assert all(t.screening["fits"] is False and t.intermediate == {} for t in trials)
    assert all(t.metrics["flash_bytes"] >= smallest for t in trials)
    assert caught.value.result.unmet() == ["flash_bytes"]
    assert "closest: trial" in str(caught.value)


@pytest.fixture(scope="module")
def wide_task(tiny_task):
    """An MLP whose weights are most of its flash (so unstructured sparsity shows in bytes)."""
    import keras

    _, train, val = tiny_task
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(96, activation="relu"),
                              keras.layers.Dense(96, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*train, epochs=5, verbose=0)
    return model, train, val


@pytest.mark.slow
def test_an_encoded_trial_the_most_channels_do_not_fit_runs_with_the_least_weight_sparsity_that_does(
        wide_task):
    model, train, val = wide_task
    space = SearchSpace(techniques=["pruning", "encode"], channel_sparsity=(0.0, 0.25),
                        weight_sparsity=(0.0, 0.9), epochs=(1, 1), sensitivity={})
    sizes = {w: screen(model, Recipe(channel_sparsity=0.25, weight_sparsity=w, encode=True), train)["flash_bytes"]
             for w in (0.0, 0.6, 0.7)}
    budget = Budget(flash_bytes=int(sizes[0.7] * 1.03) + 16)  # 0.7 fits with the encoding margin
    assert sizes[0.6] * 1.03 > budget.flash_bytes and sizes[0.0] > budget.flash_bytes  # 0.6 does not
    result = search(model, train, val, budget, space=space, n_trials=6, seed=0)
    encoded = [t for t in result.trials if t.params.get("encode")]
    assert encoded and all(t.state == "complete" for t in encoded), [t.state for t in result.trials]
    raised = 0
    for t in encoded:
        sampled = (t.params["channel_sparsity"], t.params["weight_sparsity"])
        as_sampled = screen(model, Recipe(channel_sparsity=sampled[0], weight_sparsity=sampled[1], encode=True),
                            train)["flash_bytes"]
        ran = (t.recipe["channel_sparsity"], t.recipe["weight_sparsity"])
        if as_sampled * 1.03 <= budget.flash_bytes:
            assert ran == sampled
        elif screen(model, Recipe(channel_sparsity=0.25, weight_sparsity=sampled[1], encode=True),
                    train)["flash_bytes"] * 1.03 <= budget.flash_bytes:  # more channels are enough
            assert ran[1] == sampled[1] and sampled[0] < ran[0] <= 0.25
        else:  # the most channels, then the least weight sparsity that fits
            assert ran == (0.25, max(0.7, sampled[1]))
            raised += 1
        assert ran == (t.screening["ran"], t.screening["ran_weights"])
        assert t.feasible and t.metrics["flash_bytes"] <= budget.flash_bytes
    assert raised >= 1
    assert all(t.state == "pruned" for t in result.trials if not t.params.get("encode"))


@pytest.mark.slow
def test_an_encoding_recipe_over_the_arena_before_encoding_screens_as_over_the_arena(wide_task):
    model, train, _ = wide_task
    plain = build(apply_recipe(model, Recipe(), train, fine_tune=False), train[0][:256])
    budget = plain.arena.host_bytes - 1  # the encoder refuses: the model needs more before encoding
    screened = screen(model, Recipe(encode=True), train, arena_budget=budget)
    assert screened["arena_bytes"] == plain.arena.emitted_bytes > budget
    assert screened["flash_bytes"] == len(plain.model)
