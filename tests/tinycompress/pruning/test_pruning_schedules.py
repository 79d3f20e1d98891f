"""Schedules: values at given steps, prune steps, config round trip, validation."""

import pytest

from tinycompress.pruning import ConstantSparsity, PolynomialDecay, PruningError
from tinycompress.pruning.schedules import schedule_from_config


def test_polynomial_decay_matches_zhu_gupta_formula():
    s = PolynomialDecay(0.1, 0.9, begin_step=100, end_step=300, power=3, frequency=50)
    assert s.sparsity(0) == pytest.approx(0.1)
    assert s.sparsity(200) == pytest.approx(0.9 + (0.1 - 0.9) * 0.5**3)
    assert s.sparsity(300) == pytest.approx(0.9)
    assert s.sparsity(10_000) == pytest.approx(0.9)
    prune_steps = [t for t in range(0, 500) if s.prune_now(t)]
    assert prune_steps == [100, 150, 200, 250, 300]


def test_constant_sparsity_end_step_is_always_a_pruning_step():
    s = ConstantSparsity(0.5, begin_step=3, end_step=10, frequency=4)
    assert [t for t in range(20) if s(t)[0]] == [3, 7, 10]
    assert all(s(t)[1] == 0.5 for t in range(20))


@pytest.mark.parametrize("schedule", [
    ConstantSparsity(0.3, begin_step=5, end_step=50, frequency=7),
    PolynomialDecay(0.0, 0.95, begin_step=2, end_step=40, power=2.0, frequency=3),
])
def test_config_round_trip_gives_equal_object(schedule):
    config = schedule.get_config()
    assert all(not isinstance(v, dict) for v in config.values())  # flat
    assert type(schedule).from_config(config) == schedule
    assert schedule_from_config({"class_name": type(schedule).__name__, "config": config}) == schedule


@pytest.mark.parametrize("make, word", [
    (lambda: ConstantSparsity(1.0), "target_sparsity"),
    (lambda: ConstantSparsity(-0.1), "target_sparsity"),
    (lambda: ConstantSparsity(0.5, frequency=0), "frequency"),
    (lambda: ConstantSparsity(0.5, begin_step=10, end_step=5), "end_step"),
    (lambda: PolynomialDecay(0.0, 0.5, begin_step=10, end_step=10), "end_step > begin_step"),
    (lambda: PolynomialDecay(0.0, 0.5, end_step=10, power=0), "power"),
    (lambda: schedule_from_config({"class_name": "Nope"}), "Nope"),
])
def test_invalid_arguments_raise_with_the_setting_named(make, word):
    with pytest.raises(PruningError, match=word):
        make()
