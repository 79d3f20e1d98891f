"""`tinycompress.auto.Budget`: parsing, round trip, and the check against measured figures."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from tinycompress.auto import Budget, parse_accuracy, parse_bytes, parse_ms, parse_uj
from tinycompress.errors import BudgetError


@pytest.mark.parametrize("text, expected", [("64KB", 65536), ("20 KiB", 20480), ("1MB", 1 << 20),
                                            ("1.5k", 1536), ("300", 300), (300, 300), ("512B", 512)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text, expected", [("30ms", 30.0), ("0.5s", 500.0), ("800us", 0.8), (2, 2.0)])
def test_parse_ms(text, expected):
    assert parse_ms(text) == pytest.approx(expected)


def test_parse_energy_and_accuracy():
    assert parse_uj("1.2mJ") == pytest.approx(1200.0) and parse_uj("50uJ") == 50.0
    assert parse_accuracy("90%") == pytest.approx(0.9) and parse_accuracy(0.5) == 0.5


@pytest.mark.parametrize("call", [lambda: parse_bytes("64 parsecs"), lambda: parse_bytes("-3KB"),
                                  lambda: parse_bytes(True), lambda: parse_ms("fast"),
                                  lambda: parse_accuracy("120%"), lambda: Budget(flash_bytes=0),
                                  lambda: Budget(latency_ms="nan")])
def test_bad_values_are_budget_errors_naming_the_form(call):
    with pytest.raises(BudgetError, match="expected"):
        call()


def test_round_trip_and_describe():
    b = Budget(flash_bytes="16KB", arena_bytes="8KB", macs="2M", latency_ms="30ms", energy_uj="50uJ",
               min_accuracy="90%")
    assert Budget.from_config(b.get_config()) == b
    assert b.macs == 2_000_000 and b.needs_device
    assert b.describe() == ("flash <= 16384 B, arena <= 8192 B, MACs <= 2000000, latency <= 30 ms, "
                            "energy <= 50 uJ, accuracy >= 0.9")
    assert Budget().describe() == "no limit" and Budget().is_satisfied_by({})


def test_satisfaction_and_violations_name_each_limit():
    b = Budget(flash_bytes=1000, arena_bytes=500, min_accuracy=0.8)
    ok = {"flash_bytes": 1000, "arena_bytes": 500, "accuracy": 0.8}
    assert b.is_satisfied_by(ok) and b.violations(ok) == []
    bad = {"flash_bytes": 1001, "arena_bytes": 600, "accuracy": 0.7}
    assert not b.is_satisfied_by(bad)
    assert b.violations(bad) == ["flash 1001 B > 1000 B", "arena 600 B > 500 B",
                                 "accuracy 0.7000 < 0.8000"]
    excess = b.excess(bad)
    assert excess["flash_bytes"] == pytest.approx(0.001) and excess["min_accuracy"] == pytest.approx(0.1)


def test_an_unmeasured_bounded_figure_never_satisfies():
    b = Budget(latency_ms=30)
    assert not b.is_satisfied_by({"flash_bytes": 10})
    assert b.violations({"flash_bytes": 10}) == ["latency not measured"]
    assert math.isinf(b.excess({})["latency_ms"])


def test_a_build_result_is_read_as_flash_arena_and_macs():
    built = SimpleNamespace(model=b"\0" * 900, arena=SimpleNamespace(emitted_bytes=700),
                            report=SimpleNamespace(macs=5000))
    assert Budget(flash_bytes=900, arena_bytes=700, macs=5000).is_satisfied_by(built)
    assert Budget(arena_bytes=699).violations(built) == ["arena 700 B > 699 B"]


def test_an_estimate_that_leaves_operators_out_meets_no_latency_budget():
    from tinycompress.auto.trial import cost_metrics

    budget = Budget(flash_bytes="64KB", latency_ms="20ms", energy_uj="50uJ")
    known = cost_metrics(SimpleNamespace(total_ms=4.0, total_uj=9.0, rel_error=0.3, unknown_ops=()))
    partial = cost_metrics(SimpleNamespace(total_ms=0.0, total_uj=0.0, rel_error=0.3,
                                           unknown_ops=("FULLY_CONNECTED",)))
    assert budget.is_satisfied_by({"flash_bytes": 1000, **known})
    assert partial["latency_ms"] is None and partial["energy_uj"] is None
    assert partial["cost_unknown_ops"] == ["FULLY_CONNECTED"]
    assert budget.violations({"flash_bytes": 1000, **partial}) == ["latency not measured",
                                                                  "energy not measured"]
