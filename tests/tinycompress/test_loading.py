"""Loading from every supported source, and refusing saved code by default."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tflite_export
from tinycompress import convert, load_model
from tinycompress.errors import LoadError, UnsafeModelError


def _run_legacy(script: str, tmp_path) -> None:
    """Run tf_keras/TFMOT code in its own process (TFMOT switches tf.keras globally)."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _check_exports(source, x, reference):
    """The int8 TFLM model follows the float one: within 5% of the output range everywhere,
    and the same class wherever the float model's top two are further apart than that."""
    tflite = convert(source, x)
    out = tflite_export.dequantize(tflite_export.run_tflm(tflite, tflite_export.quantize(x, tflite)), tflite)
    tolerance = 0.05 * np.ptp(reference)
    error = np.abs(out - reference).max()
    top2 = np.sort(reference, -1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * tolerance
    assert error <= tolerance
    assert clear.sum() >= 10
    np.testing.assert_array_equal(np.argmax(out[clear], -1), np.argmax(reference[clear], -1))


def test_keras_file_round_trip(keras_models, tmp_path):
    model, x = keras_models("cnn")
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.source == "keras"
    np.testing.assert_allclose(loaded.predict(x[:4])[0], model.predict(x[:4], verbose=0), atol=1e-6)


def test_lambda_in_keras_file_is_refused_unless_allowed(tmp_path):
    import keras

    m = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2, name="double"),
                          keras.layers.Dense(2)])
    m.save(tmp_path / "lam.keras")
    with pytest.raises(UnsafeModelError, match=r"(?s)Lambda\('double'\).*allow_unsafe=True"):
        load_model(tmp_path / "lam.keras")
    assert load_model(tmp_path / "lam.keras", allow_unsafe=True).source == "keras"


def test_foreign_module_is_refused(tmp_path):
    import json
    import zipfile

    import keras

    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    m.save(tmp_path / "ok.keras")
    with zipfile.ZipFile(tmp_path / "ok.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][-1]["module"] = "os"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "evil.keras", "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(UnsafeModelError, match="module 'os' is outside the allowlist"):
        load_model(tmp_path / "evil.keras")


def test_saved_model_directory_runs_code_so_it_needs_allow_unsafe(keras_models, tmp_path):
    model, x = keras_models("mlp")
    model.export(str(tmp_path / "sm"), verbose=False)
    with pytest.raises(UnsafeModelError, match=r"(?s)runs its TensorFlow graph.*allow_unsafe=True"):
        load_model(tmp_path / "sm")
    loaded = load_model(tmp_path / "sm", allow_unsafe=True)
    assert loaded.source == "saved_model"
    _check_exports(loaded, x, model.predict(x, verbose=0))


def test_missing_and_unknown_paths(tmp_path):
    with pytest.raises(LoadError, match="does not exist"):
        load_model(tmp_path / "nope.keras")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(LoadError, match="unknown model file type '.onnx'"):
        load_model(tmp_path / "m.onnx")
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(LoadError, match="not a valid .keras archive"):
        load_model(tmp_path / "bad.keras")


@pytest.mark.slow
def test_keras2_h5_with_depthwise_and_a_tfmot_pruned_model(tmp_path):
    _run_legacy(
        """
        import numpy as np, tf_keras as k
        import tensorflow_model_optimization as tfmot
        k.utils.set_random_seed(0)
        m = k.Sequential([k.Input((8, 8, 3)), k.layers.DepthwiseConv2D(3, activation="relu"),
                          k.layers.Conv2D(4, 1), k.layers.Flatten(), k.layers.Dense(3)])
        m.save("dw.h5")
        x = np.random.default_rng(0).random((100, 8, 8, 3)).astype("float32")
        np.save("x.npy", x); np.save("ref.npy", m.predict(x, verbose=0))
        p = tfmot.sparsity.keras.prune_low_magnitude(
            m, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, 0, frequency=1))
        p.compile(optimizer="sgd", loss="mse")
        p.fit(x, np.load("ref.npy"), epochs=2, verbose=0,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        s = tfmot.sparsity.keras.strip_pruning(p)
        s.save("pruned.h5")
        np.save("ref_pruned.npy", s.predict(x, verbose=0))
        """,
        tmp_path,
    )
    x = np.load(tmp_path / "x.npy")
    with open(tmp_path / "dw.h5", "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
    loaded = load_model(tmp_path / "dw.h5")
    np.testing.assert_allclose(loaded.predict(x[:8])[0], np.load(tmp_path / "ref.npy")[:8], atol=1e-5)
    _check_exports(loaded, x, np.load(tmp_path / "ref.npy"))
    pruned = load_model(tmp_path / "pruned.h5")
    kernel = pruned.model.layers[-1].get_weights()[0]
    assert np.mean(kernel == 0) >= 0.45
    _check_exports(pruned, x, np.load(tmp_path / "ref_pruned.npy"))


@pytest.mark.slow
def test_lambda_in_legacy_h5_is_refused(tmp_path):
    _run_legacy(
        """
        import tf_keras as k
        m = k.Sequential([k.Input((4,)), k.layers.Lambda(lambda t: t + 1, name="plus"),
                          k.layers.Dense(2)])
        m.save("lam.h5")
        """,
        tmp_path,
    )
    with pytest.raises(UnsafeModelError, match=r"Lambda\('plus'\)"):
        load_model(tmp_path / "lam.h5")
    loaded = load_model(tmp_path / "lam.h5", allow_unsafe=True)
    assert loaded.model.layers[0].name == "plus"


def test_in_memory_tf_keras_model_converts():
    import tf_keras

    m = tf_keras.Sequential([tf_keras.Input((6,)), tf_keras.layers.Dense(5, activation="relu"),
                             tf_keras.layers.Dense(3)])
    x = np.random.default_rng(1).random((100, 6)).astype("float32")
    loaded = load_model(m)
    assert loaded.source == "tf_keras"
    _check_exports(loaded, x, m.predict(x, verbose=0))


# ---- hostile and damaged files (issue 13) ----------------------------------------------

def _keras_file_with(tmp_path, name: str, edit) -> str:
    import json
    import zipfile

    import keras

    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    m.save(tmp_path / "base.keras")
    with zipfile.ZipFile(tmp_path / "base.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    files["config.json"] = edit(config, files)
    with zipfile.ZipFile(tmp_path / name, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in files.items():
            z.writestr(n, data)
    return tmp_path / name


@pytest.mark.parametrize("module, registered, fragment", [
    ("kerasevil.layers", None, "module 'kerasevil.layers' is outside"),
    ("tinycompress_evil", None, "module 'tinycompress_evil' is outside"),
    (None, "evil>Dense", "registered name 'evil>Dense' is from package 'evil'"),
    (None, "kerasevil>Dense", "package 'kerasevil'"),
])
def test_the_allowlist_matches_whole_package_names(tmp_path, module, registered, fragment):
    import json

    def edit(config, files):
        layer = config["config"]["layers"][-1]
        layer.pop("module", None)
        if module:
            layer["module"] = module
        layer["registered_name"] = registered
        return json.dumps(config).encode()

    with pytest.raises(UnsafeModelError, match=fragment):
        load_model(_keras_file_with(tmp_path, "evil.keras", edit))


def test_a_config_that_inflates_past_the_bound_is_not_read(tmp_path):
    import tracemalloc

    from tinycompress.loading import MAX_CONFIG_BYTES

    # 17 MB of JSON whitespace deflates to about 17 KB.
    path = _keras_file_with(tmp_path, "bomb.keras",
                            lambda config, files: b" " * (MAX_CONFIG_BYTES + 10**6) + b"{}")
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match=f"more than {MAX_CONFIG_BYTES} bytes"):
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


@pytest.mark.parametrize("case", ["not_json", "json_list", "bad_weights", "h5_garbage",
                                  "h5_config_not_json", "h5_config_number"])
def test_loader_failures_are_load_errors_naming_the_file(tmp_path, case):
    import json

    if case == "not_json":
        path = _keras_file_with(tmp_path, "m.keras", lambda c, f: b"{not json")
    elif case == "json_list":
        path = _keras_file_with(tmp_path, "m.keras", lambda c, f: b"[1, 2]")
    elif case == "bad_weights":
        def edit(config, files):
            files["model.weights.h5"] = b"\x89HDF\r\n\x1a\n" + b"\x00" * 64
            return json.dumps(config).encode()
        path = _keras_file_with(tmp_path, "m.keras", edit)
    else:
        import h5py

        path = tmp_path / "m.h5"
        if case == "h5_garbage":
            path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 512)
        else:
            with h5py.File(path, "w") as f:
                f.attrs["model_config"] = "{oops" if case == "h5_config_not_json" else 7
    with pytest.raises(LoadError) as info:
        load_model(path)
    assert str(path) in str(info.value)
