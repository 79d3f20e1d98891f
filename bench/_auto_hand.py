"""The hand-made recipes of our benchmarks, re-measured for `bench/auto.py`.

Each recipe is the one a benchmark ships, applied to the same float model
the search starts from (epochs scaled by the caller):

- ``structured50`` (bench/pruning.py ``structured``): 50% of the channels of
  every hidden Conv/Dense layer pruned during fine-tuning, then `shrink`.
- ``lowrank_structured`` (bench/lowrank.py): ``structured50``, then the first
  Dense layer factored at rank 32 (``--fc1-rank``) and fine-tuned.
- ``structured70_cluster4_lut`` (bench/clustering.py ``pruned_cluster4_lut``):
  70% of the channels pruned and removed, 4-bit clustering, TFLM LUT tensors.
- ``structured70_cluster4_encode`` and
  ``structured70_unstructured80_cluster4_encode`` (bench/deep_compression.py):
  the same shrunk model, 80% unstructured pruning for the second, 4-bit
  clustering, `tflite_export.encode` choosing an encoding per tensor with the
  arena budget given (tensors whose decoding would overflow it stay plain).
- ``structured70_lowrank40_unstructured70_cluster4_encode`` (bench/deep_compression.py's
  smallest model within 0.3 points): the shrunk model with its first Dense kernel
  factored by SVD at rank 40 (``lowrank_rank``), 70% unstructured pruning, 4-bit
  clustering, encoded as above (only where the layer has more than that rank and
  factoring saves parameters).

`candidates` returns every recipe's measured int8 figures on TFLM; `best_fitting`
picks the most accurate one that meets a budget.
"""

from __future__ import annotations

from collections.abc import Collection

import keras

import tflite_export
import tinycompress
from tinycompress.clustering import cluster_weights, strip_clustering
from tinycompress.lowrank import LowRankConfig, factorize
from tinycompress.pruning import PolynomialDecay, PruningCallback, shrink, strip_pruning
from _models import compiled, copy_of

BATCH = 64


def _hidden(model: keras.Model) -> list[str]:
    kinds = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense)
    return [layer.name for layer in model.layers if isinstance(layer, kinds)][:-1]


def _pruned(model, train, sparsity: float, epochs: int, channel: bool, batch: int) -> keras.Model:
    x, y = train
    steps = -(-len(x) // batch)
    schedule = PolynomialDecay(0.0 if channel else 0.5, sparsity, begin_step=0,
                               end_step=max((2 * epochs * steps) // 3, 1),
                               frequency=max(steps // 4, 1))
    kw = {"layers": _hidden(model), "granularity": "channel"} if channel else {}
    tuned = compiled(copy_of(model), 3e-4)
    tuned.fit(x, y, epochs=epochs, batch_size=batch, verbose=0,
              callbacks=[PruningCallback(schedule, log_summary=False, **kw)])
    return strip_pruning(tuned)


def _clustered(model, train, epochs: int, batch: int) -> keras.Model:
    c = compiled(cluster_weights(copy_of(model), bits=4), 3e-4)
    c.fit(*train, epochs=epochs, batch_size=batch, verbose=0)
    return strip_clustering(c)


def _measure(name: str, model_bytes: bytes, test) -> dict:
    """Flash, ``kTensorArenaSize`` (what `tinycompress.auto.Budget` bounds) and TFLM accuracy."""
    return {"recipe": name, "flash_bytes": len(model_bytes),
            "arena_bytes": tflite_export.measure_arena(model_bytes).emitted_bytes,
            "acc": round(tflite_export.evaluate_accuracy(model_bytes, *test), 4)}


def candidates(float_model: keras.Model, train, test, epochs: int, arena_budget: int | None,
               fc1_rank: int = 32, lowrank_rank: int = 40, batch: int = BATCH,
               names: Collection[str] | None = None) -> list[dict]:
    """Apply every hand recipe (or those in ``names``) to ``float_model``; one measured dict per recipe.

    Args:
        float_model: the trained float model the search also starts from.
        train: ``(x, y)`` fine-tuning data; its first 500 samples calibrate.
        test: ``(x, y)`` the data accuracy is measured on (TFLM, int8).
        epochs: fine-tuning epochs of every step (the benches use 2 to 8).
        arena_budget: the ``kTensorArenaSize`` the encoded recipes must stay within, or None.
        fc1_rank: rank of the first Dense layer in ``lowrank_structured``.
        lowrank_rank: rank of the first Dense layer in the Deep Compression recipe.
        batch: fine-tuning batch size (64 as in the benches; small data sets need less).
        names: make only these recipes (and the models they start from). Default None: all.

    Returns:
        ``[{"recipe", "flash_bytes", "arena_bytes", "acc"}, ...]``; ``arena_bytes``
        is the emitted ``kTensorArenaSize`` (measured host arena plus the
        scratch bound and margin), the figure a search budget bounds.
    """
    calib = train[0][:500]
    convert = lambda m: tinycompress.convert(m, calib)  # noqa: E731
    wanted = lambda name: names is None or name in names  # noqa: E731
    rows = []
    if wanted("structured50") or wanted("lowrank_structured"):
        half = compiled(shrink(_pruned(float_model, train, 0.5, epochs, True, batch)), 3e-4)
        if wanted("structured50"):
            rows.append(_measure("structured50", convert(half), test))
        dense = [layer.name for layer in half.layers if isinstance(layer, keras.layers.Dense)]
        if len(dense) > 1 and wanted("lowrank_structured"):
            both, _ = factorize(half, LowRankConfig(ranks={dense[0]: fc1_rank}))
            compiled(both, 3e-4).fit(*train, epochs=epochs, batch_size=batch, verbose=0)
            rows.append(_measure("lowrank_structured", convert(both), test))
    deep_name = f"structured70_lowrank{lowrank_rank}_unstructured70_cluster4_encode"
    seventy = ("structured70_cluster4_lut", "structured70_cluster4_encode",
               "structured70_unstructured80_cluster4_encode", deep_name)
    if not any(wanted(name) for name in seventy):
        return rows
    small = compiled(shrink(_pruned(float_model, train, 0.7, epochs, True, batch)), 3e-4)
    small.fit(*train, epochs=max(epochs // 2, 1), batch_size=batch, verbose=0)
    encoded = []
    if wanted("structured70_cluster4_lut") or wanted("structured70_cluster4_encode"):
        clustered = convert(_clustered(small, train, epochs, batch))
        if wanted("structured70_cluster4_lut"):
            lut = tflite_export.compress_luts(clustered, verify_data=test[0][:16], measure_each=False)
            rows.append(_measure("structured70_cluster4_lut", lut.model_bytes, test))
        if wanted("structured70_cluster4_encode"):
            encoded.append(("structured70_cluster4_encode", clustered))
    if wanted("structured70_unstructured80_cluster4_encode"):
        sparse = convert(_clustered(_pruned(small, train, 0.8, epochs, False, batch), train, epochs, batch))
        encoded.append(("structured70_unstructured80_cluster4_encode", sparse))
    first = [layer for layer in small.layers if isinstance(layer, keras.layers.Dense)][:-1][:1]
    fits = wanted(deep_name) and first and lowrank_rank < min(first[0].kernel.shape)
    factored, plan = factorize(small, LowRankConfig(ranks={first[0].name: lowrank_rank})) if fits else (None, None)
    if plan is not None and plan.factored:  # a rank that saves nothing leaves the layer as it is
        deep = _clustered(_pruned(factored, train, 0.7, epochs, False, batch), train, epochs, batch)
        encoded.append((deep_name, convert(deep)))
    for name, model_bytes in encoded:
        limit = None if arena_budget is None else tflite_export.host_arena_limit(model_bytes, arena_budget)
        enc = tflite_export.encode(model_bytes, encodings="auto", arena_budget=limit,
                                   verify_data=test[0][:16], measure_each=False)
        rows.append(_measure(name, enc.model_bytes, test))
    return rows


def best_fitting(rows: list[dict], flash: int, arena: int | None) -> dict | None:
    """The most accurate row with ``flash_bytes <= flash`` (and arena), or None."""
    fits = [r for r in rows if r["flash_bytes"] <= flash
            and (arena is None or r["arena_bytes"] <= arena)]
    return max(fits, key=lambda r: r["acc"]) if fits else None
