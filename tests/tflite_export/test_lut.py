import dataclasses

import numpy as np
import pytest

import tflite_export
from tflite_export import _flatbuffer as fb
from tflite_export import lut
from tflite_export.errors import VerificationError
from tflite_export.lut import LutError, compress_luts, lut_candidates


def _clustered_int8(layers, bits: int):
    """Int8 bytes of an (8, 8, 1)-input model whose kernels are clustered to ``bits``, and its data."""
    import keras

    import tinycompress
    from tinycompress.clustering import cluster_weights, strip_clustering

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), *layers])
    x = np.random.default_rng(1).normal(size=(100, 8, 8, 1)).astype("float32")
    return tinycompress.convert(strip_clustering(cluster_weights(model, bits=bits)), x), x


@pytest.fixture(scope="module")
def clustered_int8():
    """A 3-bit clustered conv + dense model, int8 (conv per channel, dense per tensor)."""
    import keras

    return _clustered_int8([
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(24, activation="relu", name="fc"),
        keras.layers.Dense(4, name="out"),
    ], bits=3)


def _by_name(model_bytes: bytes, part: str):
    return next(c for c in lut_candidates(model_bytes) if part in c.name and c.dtype == "INT8")


def _ops(model_bytes: bytes) -> list[str]:
    m = fb.unpack(model_bytes)
    names = []
    for op in m.subgraphs[0].operators:
        code = m.operatorCodes[op.opcodeIndex]
        name = fb.op_name(code)
        names.append(code.customCode.decode() if name == "CUSTOM" else name)
    return names


def test_auto_compresses_large_clustered_tensor_bit_exactly(clustered_int8):
    model_bytes, x = clustered_int8
    fc = _by_name(model_bytes, "fc")
    assert fc.nbytes == 24 * 288 and fc.distinct <= 8 and fc.bits == 3 and fc.axis is None
    r = compress_luts(model_bytes)
    assert [t.index for t in r.tensors] == [fc.index]  # conv kernel (72 B) is below min_bytes
    row = r.tensors[0]
    assert row.encoded_bytes == 24 * 288 * 3 // 8 and row.decoded_bytes == 24 * 288
    assert row.flash_saved == row.nbytes - row.encoded_bytes - row.table_bytes
    assert r.flash_saved == len(model_bytes) - len(r.model_bytes) > 0.9 * row.flash_saved
    # the decoded tensor lives in the arena: the RAM cost is real
    assert 0 < r.host_arena_added <= row.decoded_bytes + 256 and row.host_arena_added == r.host_arena_added
    assert r.verified_samples == 16
    assert _ops(r.model_bytes).count("TFLM_DECODE") == 1
    xq = tflite_export.quantize(x[:20], model_bytes)
    np.testing.assert_array_equal(
        tflite_export.run_tflm(r.model_bytes, xq), tflite_export.run_tflm(model_bytes, xq)
    )
    assert r.to_dict()["host_arena_added"] == r.host_arena_added
    assert f"| {r.flash_saved} | {r.decoded_bytes} | {r.host_arena_added} |" in r.to_markdown()


def test_auto_never_grows_a_model_of_small_tensors():
    """Each tensor's estimate says it shrinks; the DECODE ops would make the model bigger."""
    import keras

    model_bytes, x = _clustered_int8([
        keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(8, name="out"),
    ], bits=2)
    small = [c for c in lut_candidates(model_bytes) if c.dtype == "INT8" and c.flash_saved > 0]
    assert small, "the estimates promise a saving"
    grown = compress_luts(model_bytes, tensors=[c.index for c in small], verify_data=x[:4])
    assert len(grown.model_bytes) > len(model_bytes)  # what the estimate leaves out
    r = compress_luts(model_bytes, min_bytes=1, verify_data=x[:4])
    assert r.model_bytes == model_bytes and r.tensors == [] and r.flash_saved == 0


def test_chosen_tensors_use_per_channel_tables(clustered_int8):
    model_bytes, x = clustered_int8
    conv, fc = _by_name(model_bytes, "conv"), _by_name(model_bytes, "fc")
    assert conv.axis == 0 and conv.tables == 8 and conv.distinct <= 8
    r = compress_luts(model_bytes, tensors=[conv.index, fc.index], verify_data=x[:8],
                      measure_each=False)
    assert [(t.index, t.tables) for t in r.tensors] == [(conv.index, 8), (fc.index, 1)]
    assert r.verified_samples == 8 and r.tensors[0].host_arena_added is None
    assert _ops(r.model_bytes).count("TFLM_DECODE") == 2
    only_large = compress_luts(model_bytes, tensors=lambda c: c.nbytes >= 4096, verify_samples=4)
    assert [t.index for t in only_large.tensors] == [fc.index]


def test_errors_say_what_fits():
    tiny = tflite_export.testing.tiny_model()
    with pytest.raises(LutError, match=r"tensor 2 '.*' has 32 distinct values in the tensor, "
                                       r"but a 4-bit table holds at most 16"):
        compress_luts(tiny, tensors=[2], max_bits=4)
    with pytest.raises(LutError, match=r"Received tensor 0"):
        compress_luts(tiny, tensors=[0])
    for bad in (0, 8, True):
        with pytest.raises(LutError, match="max_bits between 1 and 7"):
            compress_luts(tiny, max_bits=bad)
    with pytest.raises(LutError, match="tensors='auto'"):
        compress_luts(tiny, tensors="all")


def test_wrong_table_layout_is_caught_by_verification(clustered_int8, monkeypatch):
    model_bytes, _ = clustered_int8
    conv = _by_name(model_bytes, "conv")
    # TFLM's DECODE picks tables from the quantization channels; one table for a
    # per-channel tensor decodes wrong values, and verification must say so.
    wrong = dataclasses.replace(conv, axis=None, tables=1, bits=6)
    monkeypatch.setattr(lut, "lut_candidates", lambda _: [wrong])
    with pytest.raises(VerificationError, match="LUT-compressed model's TFLM output 0 differs"):
        compress_luts(model_bytes, tensors=[conv.index], verify_samples=8)


def test_tensors_as_numpy_array(clustered_int8):
    """Issue 12: an index array (e.g. from np.flatnonzero) used to raise 'truth value ... ambiguous'."""
    model_bytes, x = clustered_int8
    conv, fc = _by_name(model_bytes, "conv"), _by_name(model_bytes, "fc")
    r = compress_luts(model_bytes, tensors=np.array([conv.index, fc.index]), verify_data=x[:4],
                      measure_each=False)
    assert [t.index for t in r.tensors] == [conv.index, fc.index] and r.flash_saved > 0
