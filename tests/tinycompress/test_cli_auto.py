"""``tinycompress auto``: usage checks without work, and a search end to end on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinycompress.cli import cli, main


def _files(d, epochs: int):
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(320, 8)).astype("float32")
    y = np.argmax(x[:, :3], axis=1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(24, activation="relu"),
                              keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if epochs:
        model.fit(x, y, epochs=epochs, verbose=0)
    model.save(d / "m.keras")
    np.savez(d / "train.npz", x=x[:240], y=y[:240])
    np.savez(d / "val.npz", x=x[240:], y=y[240:])
    return d


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Model and data files; the model is untrained (the usage checks run before any work)."""
    return _files(tmp_path_factory.mktemp("auto-cli"), epochs=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("auto-cli-trained"), epochs=20)


@pytest.mark.slow
def test_auto_end_to_end(trained, tmp_path, capsys):
    files = trained
    out = tmp_path / "search"
    code = main(["auto", str(files / "m.keras"), "--train", str(files / "train.npz"), "--val",
                 str(files / "val.npz"), "--flash", "1800", "--arena", "8KB", "--techniques",
                 "pruning,encode", "--trials", "2", "--epochs", "1", "--target", "cmake", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Pareto front" in captured.out and "Chosen (*)" in captured.out
    val_samples = len(np.load(files / "val.npz")["y"])
    assert f"measured on {val_samples:,} validation samples: one standard error" in " ".join(captured.out.split())
    assert "trials" in captured.err and "2/2" in captured.err  # the progress bar's last state
    assert "converted to" not in captured.err  # builds' notices only with --verbose
    tflite = (out / "model" / "model.tflite").read_bytes()
    assert len(tflite) <= 1800 and (out / "model" / "firmware").is_dir()
    data = json.loads((out / "trials.json").read_text())
    assert len(data["trials"]) == 2 and data["fits"]
    # the study is in the folder: --resume with more trials runs only the new one
    code = main(["auto", str(files / "m.keras"), "--train", str(files / "train.npz"), "--val",
                 str(files / "val.npz"), "--flash", "1800", "--arena", "8KB", "--techniques",
                 "pruning,encode", "--trials", "3", "--epochs", "1", "--target", "cmake", "--out",
                 str(out), "--resume", "--final-epochs", "3"])
    assert code == 0, capsys.readouterr().err
    data = json.loads((out / "trials.json").read_text())
    assert [t["number"] for t in data["trials"]] == [0, 1, 2]
    recipe = json.loads((out / "recipe.json").read_text())["recipe"]
    assert data["final"]["epochs"] == 3
    assert recipe["epochs"] == (3 if data["final"]["kept"] else data["final"]["trial_epochs"])


@pytest.mark.parametrize("extra, message", [
    (["--flash", "64 parsecs"], "expected a size like '64KB'"),
    (["--latency", "30ms"], "needs a device"),
    (["--techniques", "pruning,magic"], "unknown technique(s) ['magic']"),
])
def test_bad_budgets_and_spaces_are_one_clear_error(files, tmp_path, capsys, extra, message):
    code = main(["auto", str(files / "m.keras"), "--train", str(files / "train.npz"), "--val",
                 str(files / "val.npz"), "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_study_without_storage_is_a_usage_error(files, tmp_path):
    result = CliRunner().invoke(cli, ["auto", str(files / "m.keras"), "--train", str(files / "train.npz"),
                                      "--val", str(files / "val.npz"), "--out", str(tmp_path / "o"),
                                      "--study", "s"])
    assert result.exit_code == 2 and "--study names a study in --storage" in result.output


def test_labels_are_required(files, tmp_path, capsys):
    np.savez(tmp_path / "x_only.npz", x=np.zeros((4, 8), "float32"))
    code = main(["auto", str(files / "m.keras"), "--train", str(tmp_path / "x_only.npz"), "--val",
                 str(files / "val.npz"), "--out", str(tmp_path / "o")])
    assert code == 2 and "not ['y']" in capsys.readouterr().err
