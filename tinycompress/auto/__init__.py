"""Automatic compression to a device budget: the most accurate model that fits.

`search(model, train_data, val_data, budget)` runs an Optuna study over
combinations of the toolkit's techniques (`SearchSpace`: one knob per
technique of the contract, plus int16x8 and DECODE encodings); a trial's
untrained build is screened against the budget's size and latency limits
before it trains (`screen`), then every trial is built and measured (TFLM
accuracy, flash, arena, MACs; latency and energy from the device cost model).
It returns a `SearchResult` whose chosen model meets the `Budget` (with
``final_epochs``, the best trials' recipes fine-tuned again for longer and the
best of them that still fits returned), or raises `NoFeasibleModelError` naming the limits no
trial met.
The winner's `Recipe` re-runs without searching (`apply_recipe`), and
`write_search` writes the export, report (Pareto front table and plot),
trials and recipe. The command line is ``tinycompress auto``.

Example:
    >>> from tinycompress.auto import Budget
    >>> Budget(flash_bytes="64KB", latency_ms="30ms").describe()
    'flash <= 65536 B, latency <= 30 ms'
"""

from tinycompress.auto.budget import Budget, metrics_of, parse_accuracy, parse_bytes, parse_ms, parse_uj
from tinycompress.auto.output import render_plot, render_report, trials_csv, write_search
from tinycompress.auto.recipe import Recipe, apply_recipe
from tinycompress.auto.result import SearchResult, pareto_front
from tinycompress.auto.search import DEFAULT_TRIALS, SearchStatus, search
from tinycompress.auto.sensitivity import allocate, channel_sensitivity
from tinycompress.auto.space import BUILD_KNOBS, KNOBS, SearchSpace
from tinycompress.auto.trial import TrialRecord, measure, screen
from tinycompress.errors import AutoError, BudgetError, NoFeasibleModelError

__all__ = [
    "Budget",
    "SearchSpace",
    "Recipe",
    "search",
    "apply_recipe",
    "channel_sensitivity",
    "allocate",
    "measure",
    "screen",
    "write_search",
    "SearchResult",
    "SearchStatus",
    "TrialRecord",
    "pareto_front",
    "render_report",
    "render_plot",
    "trials_csv",
    "metrics_of",
    "parse_bytes",
    "parse_ms",
    "parse_uj",
    "parse_accuracy",
    "KNOBS",
    "BUILD_KNOBS",
    "DEFAULT_TRIALS",
    "AutoError",
    "BudgetError",
    "NoFeasibleModelError",
]
