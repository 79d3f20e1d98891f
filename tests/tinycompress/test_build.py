"""build() writes nothing; write() and export() check the destination first; golden data for every I/O."""

from __future__ import annotations

import json
import os
import re
import stat

import numpy as np
import pytest

import tflite_export
from tflite_export.emit_c import render_c_sources
from tflite_export.errors import TinyCompressError
from tinycompress import ArgumentError, ExportError, build, convert, export, write
from tinycompress.write import MARKER


def _two_io_model():
    import keras

    keras.utils.set_random_seed(0)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Dense(6, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], [keras.layers.Dense(2)(h), keras.layers.Dense(3, activation="softmax")(h)])
    rng = np.random.default_rng(0)
    return model, [rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 3)).astype("float32")]


def _golden_values(text: str, array: str) -> list[float]:
    body = re.search(re.escape(array) + r"\[[^]]*\] = \{(.*?)\};", text, re.S).group(1)
    return [int(v) for v in re.findall(r"-?\d+", body)]


@pytest.fixture(scope="module")
def built(keras_models):
    model, x = keras_models("mlp")
    return build(model, x, name="mlp", verify_samples=8, device="stm32h7a3"), model, x


def test_build_writes_nothing_and_holds_every_file(built, tmp_path, monkeypatch):
    result, model, x = built
    monkeypatch.chdir(tmp_path)
    again = build(model, x, name="mlp", verify_samples=8)
    assert list(tmp_path.iterdir()) == []
    assert again.model == result.model
    texts = render_c_sources(result.model, name="mlp", arena_size=result.arena.emitted_bytes)
    assert result.sources == {k: v.encode() for k, v in texts.items()}
    assert sorted(result.contents()) == sorted(
        ["model.tflite", "mlp_data.cc", "mlp_data.h", "mlp_io.h", "mlp_ops.h", "report.json", "report.md"])
    assert result.report.flash_bytes == len(result.model)


def test_device_adds_the_cost_estimate_to_the_reports(built):
    result = built[0]
    cost = result.report.cost
    assert cost == tflite_export.estimate(result.model, "stm32h7a3")
    assert [layer.cost for layer in result.report.layers] == list(cost.layers)
    d = json.loads(result.contents()["report.json"])
    assert d["cost"]["total_cycles"] == pytest.approx(cost.total_cycles)
    assert d["cost"]["estimated"] is True and d["cost"]["source"] == cost.source
    md = result.contents()["report.md"].decode()
    assert "| est. latency |" in md and "est. cycles" in md and "estimated from" in md


def test_unknown_device_fails_before_any_work(tmp_path):
    with pytest.raises(tflite_export.DeviceError, match="nrf52840"):
        export(object(), np.zeros((4, 4), "float32"), tmp_path / "out", device="esp32")
    assert list(tmp_path.iterdir()) == []


def test_export_flash_equals_inspect_of_slimmed_convert(built, converted):
    # convert() does not slim; export() does: slim(convert(m)) is what export writes.
    result, _, _ = built
    plain = converted("mlp")
    assert tflite_export.inspect(plain, measure=False).flash_bytes > result.report.flash_bytes
    slimmed = tflite_export.slim(plain).model
    assert tflite_export.inspect(slimmed, measure=False).flash_bytes == result.report.flash_bytes


def test_write_renders_a_target_from_the_result_and_honours_the_umask(built, tmp_path):
    result, _, _ = built
    old = os.umask(0o022)
    try:
        written = write(result, tmp_path / "out", target="cortex-m")
    finally:
        os.umask(old)
    out = written.out_dir
    assert "firmware/Makefile" in written.files and (out / "firmware" / "src" / "main.cc").is_file()
    assert (out / MARKER).is_file() and MARKER not in written.files
    assert (out / "model.tflite").read_bytes() == result.model
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()} == {0o644}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_golden_data_covers_every_input_and_output(tmp_path):
    model, x = _two_io_model()
    result = export(model, x, tmp_path / "out", target="cmake", verify_samples=4)
    golden = next((tmp_path / "out" / "firmware").rglob("model_golden.c")).read_text()
    ins = [tflite_export.quantize(xi[:1], result.model, index=i) for i, xi in enumerate(x)]
    outs = tflite_export.run_tflm(result.model, ins)
    for i, xi in enumerate(ins):
        assert _golden_values(golden, f"input{i}") == xi.reshape(-1).tolist()
    for i, yi in enumerate(outs):
        assert _golden_values(golden, f"output{i}") == np.asarray(yi).reshape(-1).tolist()


@pytest.mark.parametrize("bad", ["under_file", "proc"])
def test_unusable_out_fails_before_loading_the_model(tmp_path, bad):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "out" if bad == "under_file" else "/proc/self/out"
    # object() is no model: reaching the loader would raise LoadError, not ExportError.
    with pytest.raises(ExportError, match="cannot write the output directory"):
        export(object(), np.zeros((4, 4), "float32"), out)


def test_overwrite_refuses_a_directory_that_is_not_an_export(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match=f"holds no '{MARKER}' file"):
        export(object(), np.zeros((4, 4), "float32"), tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("kwargs, match", [
    ({"verify_samples": 0}, "verify_samples"), ({"mode": "int4"}, "mode="),
    ({"target": "stm32"}, "target="), ({"language": "rust"}, "language="),
])
def test_bad_arguments_are_our_errors_before_any_work(tmp_path, kwargs, match):
    with pytest.raises(ArgumentError, match=match) as info:
        export(object(), np.zeros((4, 4), "float32"), tmp_path / "out", **kwargs)
    assert isinstance(info.value, TinyCompressError) and isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


def test_convert_leaves_the_environment_alone(keras_models, monkeypatch):
    model, x = keras_models("mlp")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    convert(model, x[:16])
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    with pytest.raises(ArgumentError, match="io_dtype='int16'"):
        convert(model, x, io_dtype="int16")


def test_slim_docstring_names_only_functions_that_exist():
    import tflite_export.slim as slim_module

    named = set(re.findall(r"tflite_export\.(\w+)", slim_module.__doc__))
    assert named and all(hasattr(tflite_export, n) for n in named)


def _sparse_mlp():
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10)])
    kernel, bias = model.layers[0].get_weights()
    rng = np.random.default_rng(1)
    kernel[rng.random(kernel.shape) < 0.9] = 0.0  # 90% unstructured sparsity
    model.layers[0].set_weights([kernel, bias])
    return model, rng.normal(size=(128, 64)).astype("float32")


@pytest.mark.slow
def test_encode_shrinks_a_sparse_model_and_keeps_tflm_outputs(tmp_path):
    model, x = _sparse_mlp()
    plain = build(model, x, verify_samples=8)
    encoded = export(model, x, tmp_path / "out", encode="prune", verify_samples=8)
    kernel = next(t for t in encoded.encoding.tensors if t.nbytes == 64 * 64)
    assert kernel.encoding == "prune" and kernel.encoded_bytes < 64 * 64 // 3
    assert len(encoded.model) < len(plain.model) - 64 * 64 // 2
    assert encoded.report.flash_bytes == len(encoded.model)
    xq = tflite_export.quantize(x[:16], plain.model)
    assert np.array_equal(tflite_export.run_tflm(encoded.model, xq), tflite_export.run_tflm(plain.model, xq))
    report = __import__("json").loads((tmp_path / "out" / "report.json").read_text())
    assert report["encode"]["flash_after"] == len(encoded.model)
    assert "prune" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_encode_arena_budget_bounds_the_emitted_arena_size():
    from tflite_export.encode import ArenaBudgetError

    model, x = _sparse_mlp()
    plain = build(model, x, verify_samples=2)
    free = build(model, x, encode="prune", verify_samples=2)
    assert free.arena.emitted_bytes > plain.arena.emitted_bytes  # the decoded kernel lives in the arena
    # over the encoded model's host arena, under its kTensorArenaSize: the kernel stays unencoded
    budget = free.arena.emitted_bytes - 16
    assert budget > free.arena.host_bytes
    bounded = build(model, x, encode="prune", encode_arena_budget=budget, verify_samples=2)
    assert bounded.arena.emitted_bytes <= budget and bounded.model == plain.model
    with pytest.raises(ArenaBudgetError, match=rf"needs a {plain.arena.emitted_bytes}-byte kTensorArenaSize .*"
                                               rf"encode_arena_budget={plain.arena.emitted_bytes - 16}\."):
        build(model, x, encode="prune", encode_arena_budget=plain.arena.emitted_bytes - 16, verify_samples=2)


def test_lut_and_encode_are_exclusive():
    with pytest.raises(ArgumentError, match="exclusive"):
        build(object(), np.zeros((4, 4), "float32"), lut=True, encode="auto")
