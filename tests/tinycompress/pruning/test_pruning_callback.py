"""PruningCallback under fit: sparsity reached, zeros kept, granularities,
no trace left, and resumption (BackupAndRestore, .keras save/reload)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tinycompress.pruning import (
    ConstantSparsity,
    PolynomialDecay,
    PruningCallback,
    PruningError,
    sparsity_summary,
    strip_pruning,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6, 2)).astype("float32")
    return x, (x.sum(axis=(1, 2, 3)) > 0).astype("int32")


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu", name="fc"),
        keras.layers.Dense(2, name="head"),
    ])
    m.compile(optimizer=keras.optimizers.Adam(1e-2),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m


def test_reaches_target_and_pruned_weights_never_revive():
    m = _model()
    x, y = _data()
    cb = PruningCallback(PolynomialDecay(0.0, 0.8, begin_step=0, end_step=8, frequency=4))
    hist = m.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[cb])
    assert cb.step == int(m.optimizer.iterations.numpy()) == 12
    for row in sparsity_summary(m):
        assert row.zeros == int(round(0.8 * row.size))
    assert hist.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
    masks = [mk.copy() for mk in cb.masks]
    # 8 more optimizer steps after end_step: masked weights must stay exactly 0.
    m.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    for (var, _), mk in zip(cb._targets, masks):
        assert np.all(var.numpy()[mk == 0] == 0)
        assert np.all(var.numpy()[mk == 1] != 0)


@pytest.mark.slow
def test_block_and_n_of_m_granularities_under_fit():
    x, y = _data()
    m = _model()
    cb = PruningCallback(ConstantSparsity(0.5, frequency=2), layers=["fc"], granularity="block")
    m.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    k = m.get_layer("fc").kernel.numpy()  # (128, 16): blocks of 4 rows
    blocks = k.reshape(32, 4, 16)
    zero_blocks = np.all(blocks == 0, axis=1)
    assert zero_blocks.sum() == 32 * 16 // 2
    assert np.all(np.any(blocks != 0, axis=1) | zero_blocks)
    assert np.all(m.get_layer("conv").kernel.numpy() != 0)  # not selected

    m = _model()
    cb = PruningCallback(ConstantSparsity(0.5, frequency=2), layers=keras.layers.Dense,
                         granularity="n_of_m", n=2, m=4)
    m.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    groups = m.get_layer("fc").kernel.numpy().reshape(32, 4, 16)
    assert np.all((groups != 0).sum(axis=1) == 2)


@pytest.mark.slow
def test_global_scope_and_predicate_selection():
    x, y = _data()
    m = _model()
    cb = PruningCallback(ConstantSparsity(0.9, frequency=1), scope="global",
                         layers=lambda l: l.name in ("conv", "fc"))
    m.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[cb])
    rows = {r.layer: r for r in sparsity_summary(m)}
    total = rows["conv"].size + rows["fc"].size
    assert rows["conv"].zeros + rows["fc"].zeros == int(round(0.9 * total))
    assert rows["head"].zeros == 0


def test_callbacks_at_different_ratios_keep_each_others_channels_pruned():
    # Each channel callback masks every variable of the channel graph (ones where it prunes
    # nothing), so "c2"'s callback also masks "c1"; it must not drop "c1"'s own mask, or
    # c1's pruned channels grow back through c2's unmasked input weights (Caffe LeNet-5:
    # linear convolutions with trained biases).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10, 10, 1)).astype("float32")
    y = (x.sum(axis=(1, 2, 3)) > 0).astype("int32")
    keras.utils.set_random_seed(0)
    m = keras.Sequential([
        keras.Input((10, 10, 1)), keras.layers.Conv2D(8, 3, name="c1"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(8, 3, name="c2"), keras.layers.Flatten(), keras.layers.Dense(2, name="head")])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    m.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    m.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)  # step 0: both prune at the first batch
    cbs = [PruningCallback(ConstantSparsity(ratio, frequency=100), layers=[name], granularity="channel",
                           log_summary=False) for name, ratio in (("c1", 0.5), ("c2", 0.75))]
    m.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=cbs)
    zero_channels = [int(np.sum(np.all(m.get_layer(n).kernel.numpy() == 0, axis=(0, 1, 2)))) for n in ("c1", "c2")]
    assert zero_channels == [4, 6]
    assert all(v.constraint is None for v in m.trainable_variables)


@pytest.mark.slow
def test_no_trace_after_fit_and_strip_is_plain():
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=1, batch_size=16, verbose=0,
          callbacks=[PruningCallback(ConstantSparsity(0.5, frequency=1))])
    assert all(v.constraint is None for v in m.trainable_variables)
    s = strip_pruning(m)
    assert "tinycompress" not in json.dumps(s.to_json())
    for a, b in zip(s.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(s.predict(x, verbose=0), m.predict(x, verbose=0))


def test_config_round_trip_and_errors():
    cb = PruningCallback(PolynomialDecay(0.0, 0.5, end_step=10), layers=["fc"],
                         granularity="block", block_size=2)
    again = PruningCallback.from_config(cb.get_config())
    assert again.get_config() == cb.get_config()
    with pytest.raises(PruningError, match="granularity"):
        PruningCallback(ConstantSparsity(0.5), granularity="row")
    with pytest.raises(PruningError, match="bn_gamma"):
        PruningCallback(ConstantSparsity(0.5), criterion="bn_gamma")
    with pytest.raises(PruningError, match="names"):
        PruningCallback(ConstantSparsity(0.5), layers=keras.layers.Dense).get_config()
    with pytest.raises(PruningError, match="No layer named 'nope'"):
        _model().fit(*_data(), epochs=1, verbose=0,
                     callbacks=[PruningCallback(ConstantSparsity(0.5), layers=["nope"])])


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


@pytest.mark.slow
def test_backup_and_restore_resumes_same_step_and_masks(tmp_path):
    x, y = _data()
    # Prunes at steps 0, 3, 6, 9, ...: the interruption after step 8 falls between.
    schedule = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=39, frequency=3)
    m = _model()
    cb = PruningCallback(schedule)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        m.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[cb, backup, _Interrupt()])
    assert all(v.constraint is None for v in strip_pruning(m).trainable_variables)
    masks_at_interrupt = [mk.copy() for mk in cb.masks]
    step_at_interrupt = cb.step
    assert step_at_interrupt == 8

    m2 = _model(seed=1)  # fresh process state: new weights, new callback
    cb2 = PruningCallback(schedule)
    seen = {}

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if not seen:
                seen["step"], seen["masks"] = cb2.step, [mk.copy() for mk in cb2.masks]

    backup2 = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    m2.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[backup2, cb2, Probe()])
    assert seen["step"] == step_at_interrupt + 1  # cb2 runs before Probe on the first batch
    for a, b in zip(seen["masks"], masks_at_interrupt):
        np.testing.assert_array_equal(a, b)
    assert cb2.step == int(m2.optimizer.iterations.numpy()) == 20
    assert all(v.constraint is None for v in m2.trainable_variables)


@pytest.mark.slow
def test_keras_save_reload_mid_schedule(tmp_path):
    x, y = _data()
    schedule = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=40, frequency=4)
    m = _model()
    cb = PruningCallback(schedule)
    m.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    path = str(tmp_path / "mid.keras")
    m.save(path)
    masks = [mk.copy() for mk in cb.masks]

    loaded = keras.saving.load_model(path)
    cb2 = PruningCallback(schedule)
    cb2.set_model(loaded)
    cb2.on_train_begin()
    cb2._sync()
    assert cb2.step == cb.step == 8
    for a, b in zip(cb2.masks, masks):
        np.testing.assert_array_equal(a, b)
    cb2.on_train_end()
    loaded.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[cb2])
    assert cb2.step == 20
    for row in sparsity_summary(loaded):
        assert row.zeros == int(round(schedule.sparsity(16) * row.size))  # last prune step


@pytest.mark.slow
def test_mirrored_strategy_two_logical_cpus():
    script = textwrap.dedent("""
        import os, json
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, numpy as np
        from tinycompress.pruning import PruningCallback, PolynomialDecay, sparsity_summary
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            m = keras.Sequential([keras.Input((12,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(3)])
            m.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = np.random.rand(128, 12).astype("float32"); y = np.random.randint(0, 3, 128)
        cb = PruningCallback(PolynomialDecay(0.0, 0.75, begin_step=0, end_step=8, frequency=2))
        m.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[cb])
        kept = [np.all(v.numpy()[mk == 0] == 0) for (v, _), mk in zip(cb._targets, cb.masks)]
        print(json.dumps({"replicas": strategy.num_replicas_in_sync, "step": cb.step,
                          "sparsity": [r.sparsity for r in sparsity_summary(m)],
                          "zeros_kept": bool(all(kept))}))
    """)
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["step"] == 16 and result["zeros_kept"]
    assert result["sparsity"] == pytest.approx([0.75, 0.75], abs=0.01)


class _Custom(keras.layers.Layer):
    """A user layer exposing its kernel through the prunable-layer protocol."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 10), initializer="glorot_uniform")

    def call(self, x):
        return keras.ops.matmul(x, self.w)

    def get_prunable_weights(self):
        return [self.w]


@pytest.mark.slow
def test_layers_defining_get_prunable_weights_are_pruned():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((12,)), _Custom(name="custom"), keras.layers.Dense(2, name="d")])
    m.compile(optimizer="adam", loss="mse")
    cb = PruningCallback(ConstantSparsity(0.6, frequency=1), layers=["custom"])
    m.fit(np.random.rand(32, 12), np.random.rand(32, 2), epochs=2, batch_size=8, verbose=0,
          callbacks=[cb])
    assert int((m.get_layer("custom").w.numpy() == 0).sum()) == 72
    assert np.all(m.get_layer("d").kernel.numpy() != 0)


def test_slimming_l1_applies_with_every_granularity():
    """slimming_l1 penalises BatchNorm gammas during fit whatever the granularity."""
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="d"),
                          keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(2)])
    m.compile(optimizer="sgd", loss="mse")
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            reg = m.get_layer("bn").gamma.regularizer
            seen.append(reg.get_config()["l1"] if isinstance(reg, keras.regularizers.L1) else None)

    cb = PruningCallback(ConstantSparsity(0.5, frequency=1), granularity="weight", slimming_l1=0.25,
                         log_summary=False)
    m.fit(np.random.rand(16, 6), np.random.rand(16, 2), batch_size=8, epochs=1, verbose=0,
          callbacks=[cb, Probe()])
    assert seen == pytest.approx([0.25, 0.25])
    assert m.get_layer("bn").gamma.regularizer is None  # removed after fit
