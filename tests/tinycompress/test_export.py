"""export(): files, report figures, atomic writes, per-layer error."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tflite_export
from tinycompress.errors import ExportError
from tinycompress.export import export
from tinycompress.write import MARKER
from tflite_export.errors import UnsupportedModelError


@pytest.fixture(scope="module")
def exported(keras_models, tmp_path_factory):
    model, x = keras_models("cnn")
    out = tmp_path_factory.mktemp("exp") / "cnn"
    return export(model, x, out, name="cnn", layer_errors=True, device="ek-ra6m4"), model, x


def test_files_and_report_are_the_measured_figures(exported):
    result, model, x = exported
    out = result.out_dir
    assert sorted(result.files) == sorted(
        ["cnn_data.cc", "cnn_data.h", "cnn_io.h", "cnn_ops.h", "model.tflite", "report.json", "report.md"]
    )
    tflite = (out / "model.tflite").read_bytes()
    assert tflite == result.model
    report = json.loads((out / "report.json").read_text())
    assert report["flash_bytes"] == len(tflite)
    assert report["arena"]["emitted_bytes"] == result.arena.emitted_bytes
    assert f"#define CNN_TENSOR_ARENA_SIZE {result.arena.emitted_bytes}" in (out / "cnn_io.h").read_text()
    assert report["slim"]["slim_bytes"] < report["slim"]["unslimmed_bytes"]
    assert report["verification"]["max_lsb_diff"] <= 1
    assert report["verification"]["argmax_agreement"] >= 0.9
    assert "64-bit" in (out / "report.md").read_text()
    cost = report["cost"]
    assert cost["estimated"] is True and cost["device"]["core"] == "cortex-m33"
    assert [layer["cost"]["known"] for layer in report["layers"]] == [
        c["known"] for c in cost["layers"]]
    assert cost["totals_exclude"] == list(dict.fromkeys(c["op"] for c in cost["layers"] if not c["known"]))
    assert "Estimated on ek-ra6m4, not measured" in (out / "report.md").read_text()


def test_emitted_arena_is_real(exported):
    result, _, _ = exported
    a = result.arena
    fits = tflite_export.arena_fits(result.model, [a.emitted_bytes, a.host_bytes, a.host_bytes - 1,
                                                   int(a.host_bytes * 0.8)])
    assert fits == [True, True, False, False]


def test_layer_errors_cover_the_layers_and_are_small(exported):
    result, _, _ = exported
    names = [e.layer for e in result.layer_errors]
    assert {"conv_a", "conv_b", "head"} <= set(names)
    assert all(e.relative_rms < 0.1 for e in result.layer_errors)
    errs = [e.relative_rms for e in result.layer_errors]
    assert errs == sorted(errs, reverse=True)


def test_existing_directory_is_not_clobbered(exported, keras_models):
    result, model, x = exported
    before = (result.out_dir / "model.tflite").read_bytes()
    with pytest.raises(ExportError, match="already exists.*overwrite=True"):
        export(model, x, result.out_dir)
    assert (result.out_dir / "model.tflite").read_bytes() == before


def test_failed_export_leaves_nothing(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4),
                              keras.layers.Activation("gelu"), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(100, 8)).astype("float32")
    with pytest.raises(UnsupportedModelError):
        export(model, x, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_atomically(keras_models, tmp_path):
    model, x = keras_models("mlp")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("old")
    (tmp_path / "out" / MARKER).write_text("")  # a previous export (issue 13: only those)
    result = export(model, x, tmp_path / "out", overwrite=True, slim=False, verify_samples=4)
    assert not (tmp_path / "out" / "stale.txt").exists()
    assert result.unslimmed_bytes == len(result.model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow
def test_lut_export_of_a_clustered_model(tmp_path):
    import keras

    from tinycompress.clustering import cluster_weights, strip_clustering

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(8)])
    x = np.random.default_rng(0).random((100, 64)).astype("float32")
    plain = strip_clustering(cluster_weights(model, bits=4))
    base = export(plain, x, tmp_path / "plain")
    packed = export(plain, x, tmp_path / "lut", lut=True)
    assert "TFLM_DECODE" in " ".join(packed.report.ops) or "CUSTOM" in packed.report.ops
    assert "AddDecode" in (tmp_path / "lut" / "model_ops.h").read_text()
    saved = len(base.model) - len(packed.model)
    assert saved == packed.lut.flash_saved > 64 * 64 // 2 - 256
    assert packed.arena.host_bytes > base.arena.host_bytes
    assert packed.verification.max_lsb_diff <= 1
    report = (tmp_path / "lut" / "report.json").read_text()
    assert '"lut"' in report and str(packed.lut.flash_saved) in report


def test_layer_errors_count_a_fused_tensor_for_its_last_layer_only(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    x_in = keras.Input((8, 8, 1))
    y = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(x_in)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.ReLU(6.0, name="relu6")(y)
    y = keras.layers.GlobalAveragePooling2D(name="pool")(y)
    model = keras.Model(x_in, keras.layers.Dense(3, name="head")(y))
    x = np.random.default_rng(0).random((100, 8, 8, 1)).astype("float32")
    result = export(model, x, tmp_path / "fused", layer_errors=True)
    rows = {e.layer: e for e in result.layer_errors}
    # CONV_2D computes conv, batchnorm and relu6 at once: its tensor is relu6's output.
    assert "relu6" in rows and not {"conv", "bn"} & set(rows)
    assert len({e.tensor for e in result.layer_errors}) == len(result.layer_errors)
    assert all(e.relative_rms < 0.1 for e in result.layer_errors)
