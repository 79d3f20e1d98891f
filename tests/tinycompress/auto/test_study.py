"""`FeasiblePruner`: only hopeless trials are pruned, against feasible trials only."""

from __future__ import annotations

import optuna
import pytest

from tinycompress.auto._study import FeasiblePruner


def _study(pruner: FeasiblePruner, peers: list[tuple[float, bool]]) -> optuna.Study:
    """A study whose complete trials reported ``accuracy`` at step 1 and are ``feasible`` or not."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for accuracy, feasible in peers:
        study.add_trial(optuna.trial.create_trial(
            value=accuracy, intermediate_values={0: accuracy - 0.01, 1: accuracy},
            user_attrs={"feasible": feasible}))
    return study


def _pruned(study: optuna.Study, reports: dict[int, float]) -> bool:
    trial = study.ask()
    for step, accuracy in reports.items():
        trial.report(accuracy, step)
    return trial.should_prune()


@pytest.mark.parametrize("accuracy, pruned", [(0.97, False), (0.931, False), (0.929, True), (0.40, True)])
def test_a_trial_is_pruned_only_far_below_the_feasible_median(accuracy, pruned):
    # the infeasible (uncompressed) trial at 0.99 does not raise the bar; the median is 0.98
    study = _study(FeasiblePruner(), [(0.97, True), (0.98, True), (0.985, True), (0.99, False)])
    assert _pruned(study, {0: 0.5, 1: accuracy}) is pruned


def test_no_pruning_before_warmup_or_with_too_few_feasible_peers():
    assert not _pruned(_study(FeasiblePruner(), [(0.98, True)] * 3), {0: 0.1})  # step 0: warm-up
    assert not _pruned(_study(FeasiblePruner(), [(0.98, True)] * 2 + [(0.99, False)]), {0: 0.1, 1: 0.1})


@pytest.mark.parametrize("accuracy, pruned", [(0.86, False), (0.84, True)])
def test_with_a_floor_a_trial_is_pruned_far_below_it(accuracy, pruned):
    study = _study(FeasiblePruner(0.9), [])  # no peers needed
    assert _pruned(study, {0: 0.5, 1: accuracy}) is pruned
