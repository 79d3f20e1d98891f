"""`SearchSpace` and `Recipe`: every technique of the contract is searched; restrictions hold."""

from __future__ import annotations

import importlib

import keras
import optuna
import pytest

import tinycompress
from tinycompress.auto import BUILD_KNOBS, KNOBS, Recipe, SearchSpace
from tinycompress.core import Technique
from tinycompress.errors import AutoError


def _techniques() -> list[str]:
    names = []
    for package in tinycompress._SUBPACKAGES:
        technique = getattr(importlib.import_module(f"tinycompress.{package}"), "TECHNIQUE", None)
        if isinstance(technique, Technique):
            names.append(technique.name)
    return names


def test_every_technique_of_the_contract_has_a_knob():
    names = _techniques()
    assert len(names) >= 6
    assert sorted(names) == sorted(KNOBS), "add a knob to tinycompress.auto.space for each technique"
    assert set(BUILD_KNOBS) == {"int16x8", "encode"}


def _sample(space: SearchSpace, n: int = 60, seed: int = 0) -> list[Recipe]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    recipes = []
    for _ in range(n):
        trial = study.ask()
        recipes.append(space.suggest(trial, seed=7))
        study.tell(trial, 0.0)
    return recipes


def test_samples_cover_the_space_and_respect_the_exclusions():
    recipes = _sample(SearchSpace(layers_removed=(0, 1)))
    used = {name for r in recipes for name in r.techniques()}
    assert used == set(KNOBS)
    assert {r.mode for r in recipes} == {"int8", "int16x8"} and {r.encode for r in recipes} == {False, True}
    assert {r.lowrank_layers for r in recipes if r.lowrank_energy is not None} == {"all", "dense"}
    assert not any(r.qat and (r.mode != "int8" or r.cluster_bits is not None) for r in recipes)
    assert any(r.weight_sparsity > 0 for r in recipes)
    assert all(r.encode for r in recipes if r.weight_sparsity > 0)  # zeros pay only when encoded
    assert all(r.seed == 7 and r.learning_rate_schedule == "cosine" for r in recipes)
    # grid values as written, as a user reads them in recipe.json (not 0.30000000000000004)
    gridded = [(v, places) for r in recipes for v, places in
               ((r.channel_sparsity, 2), (r.weight_sparsity, 1), (r.lowrank_energy, 2)) if v is not None]
    assert all(repr(v) == repr(round(v, places)) for v, places in gridded)


def test_a_restricted_space_samples_only_its_techniques_and_ranges():
    space = SearchSpace(techniques=["pruning", "clustering"], channel_sparsity=(0.25, 0.5),
                        cluster_bits=(3, 4), epochs=(2, 2))
    for r in _sample(space, 30):
        assert set(r.techniques()) <= {"pruning", "clustering"}
        assert 0.25 <= r.channel_sparsity <= 0.5 and r.cluster_bits in (None, 3, 4)
        assert r.mode == "int8" and not r.encode and not r.qat and r.epochs == 2
    held = SearchSpace(techniques=["pruning"], learning_rate_schedule="constant")
    assert {r.learning_rate_schedule for r in _sample(held, 5)} == {"constant"}


def test_baseline_is_the_least_compressed_point():
    space = SearchSpace(layers_removed=(0, 2))
    study = optuna.create_study()
    study.enqueue_trial(space.baseline())
    recipe = space.suggest(study.ask(), seed=0)
    assert recipe.techniques() == [] and recipe.mode == "int8" and not recipe.encode


def _recipe_of(space: SearchSpace, params: dict) -> Recipe:
    study = optuna.create_study()
    study.enqueue_trial(params)
    return space.suggest(study.ask(), seed=0)


def test_starts_are_the_hand_recipe_families_within_the_space():
    space = SearchSpace(layers_removed=(0, 2), channel_sparsity=(0.1, 0.4), cluster_bits=(2, 3),
                        weight_sparsity=(0.0, 0.6), lowrank_energy=(0.5, 0.7), epochs=(1, 4))
    recipes = [_recipe_of(space, params) for params in space.starts()]
    assert [r.techniques() for r in recipes] == [["pruning"], ["lowrank", "pruning"],
                                                 ["pruning", "clustering"], ["pruning", "clustering"]]
    assert all(r.channel_sparsity == 0.4 and r.epochs == 4 and r.mode == "int8" for r in recipes)
    assert recipes[1].lowrank_layers == "dense" and recipes[1].lowrank_energy == pytest.approx(0.7)
    assert [(r.cluster_bits, r.encode, r.weight_sparsity) for r in recipes[2:]] == [(3, True, 0.0),
                                                                                  (3, True, 0.6)]
    # only families whose techniques the space has; none that the ranges make the baseline
    assert SearchSpace(techniques=["clustering", "encode"]).starts() == []
    narrow = SearchSpace(techniques=["pruning", "lowrank"], channel_sparsity=(0.0, 0.0))
    assert [_recipe_of(narrow, p).techniques() for p in narrow.starts()] == [["lowrank"]]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_tpe_runs_the_baseline_then_the_starts_random_search_only_the_baseline(sampler):
    from tinycompress.auto._study import open_study
    from tinycompress.auto.search import _first_trials, _optimize

    space = SearchSpace(techniques=["pruning", "lowrank", "clustering", "encode"])

    class Run:  # the objective without training: the parameters are what is checked
        def __init__(self) -> None:
            self.space = space

        def __call__(self, trial) -> float:
            return float(space.suggest(trial).channel_sparsity)

    def run(n_trials: int):
        study, _ = open_study(storage=None, study_name=None, out=None, resume=False, sampler=sampler,
                              seed=0, direction="maximize", floor=None, settings={},
                              first=_first_trials(space, sampler, n_trials))
        _optimize(study, Run(), n_trials, None, "accuracy", None)
        return study.trials

    trials, expected = run(7), [space.baseline(), *space.starts()]
    assert len(expected) == 5 and len(trials) == 7
    same = [all(params[k] == trial.params[k] for k in trial.params) for params, trial in zip(expected, trials)]
    assert same == ([True] * 5 if sampler == "tpe" else [True, False, False, False, False])
    # fewer trials than starts: no start is left queued
    assert [t.state.name for t in run(2)] == ["COMPLETE", "COMPLETE"]


def test_fit_to_drops_what_the_model_cannot_use():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    fitted = SearchSpace().fit_to(m, candidates=0, logits=False)
    assert "layer_pruning" not in fitted.techniques and "distillation" not in fitted.techniques
    assert SearchSpace().fit_to(m, candidates=5, logits=True).layers_removed == (0, 2)
    with pytest.raises(AutoError, match="nothing left to search"):
        SearchSpace(techniques=["distillation"]).fit_to(m, candidates=0, logits=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"techniques": ["prunning"]}, r"unknown technique\(s\) \['prunning'\].*choose from"),
    ({"channel_sparsity": (0.5, 0.2)}, "channel_sparsity must be a pair"),
    ({"cluster_bits": (1, 4)}, "cluster_bits"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate_schedule": "step"}, "learning_rate_schedule must be one of"),
])
def test_bad_spaces_are_refused(kwargs, match):
    with pytest.raises(AutoError, match=match):
        SearchSpace(**kwargs)


def test_space_and_recipe_round_trip(tmp_path):
    space = SearchSpace(techniques=["lowrank", "encode"], lowrank_energy=(0.6, 0.9),
                        learning_rate_schedule="constant")
    assert SearchSpace.from_config(space.get_config()) == space
    recipe = Recipe(layers_removed=1, lowrank_energy=0.8, lowrank_layers="dense", channel_sparsity=0.3,
                    distill=True, cluster_bits=3, mode="int16x8", encode=True, epochs=2, seed=3,
                    learning_rate_schedule="cosine")
    assert Recipe.load(recipe.save(tmp_path / "recipe.json")) == recipe
    assert recipe.techniques() == ["layer_pruning", "lowrank", "pruning", "distillation", "clustering"]


@pytest.mark.parametrize("kwargs, match", [
    ({"qat": True, "cluster_bits": 4}, "QAT or clustering"),
    ({"qat": True, "mode": "int16x8"}, "int8"),
    ({"channel_sparsity": 1.0}, "channel_sparsity"),
    ({"mode": "int4"}, "mode"),
    ({"lowrank_energy": 0.5, "lowrank_layers": "conv"}, "lowrank_layers must be one of"),
    ({"epochs": 1.5}, "epochs"),
    ({"learning_rate_schedule": "linear"}, "learning_rate_schedule must be one of"),
])
def test_bad_recipes_are_refused(kwargs, match):
    with pytest.raises(AutoError, match=match):
        Recipe(**kwargs)


def test_recipe_files_are_checked(tmp_path):
    (tmp_path / "a.json").write_text("{")
    (tmp_path / "b.json").write_text('{"recipe": {"bits": 3}}')
    with pytest.raises(AutoError, match="cannot read recipe file"):
        Recipe.load(tmp_path / "a.json")
    with pytest.raises(AutoError, match=r"unknown recipe field\(s\) \['bits'\]"):
        Recipe.load(tmp_path / "b.json")
