"""`tflite_export.encode`: one encoding per tensor, measured, bit-exact on TFLM."""

import numpy as np
import pytest

import tflite_export
from tflite_export import _flatbuffer as fb
from tflite_export.encode import ArenaBudgetError, EncodeError, encode, encode_candidates


@pytest.fixture(scope="module")
def sparse_and_clustered(sparse_and_clustered_keras):
    """Int8 model with a 95%-sparse Dense(32) (9,216 B) and a 4-value Dense(32) (1,024 B)."""
    import tinycompress

    model, x = sparse_and_clustered_keras(64)
    return tinycompress.convert(model, x), x


def _index(model_bytes, part):
    return next(c.index for c in encode_candidates(model_bytes)
                if part in c.name and c.dtype == "INT8")


def _decodes(model_bytes):
    m = fb.unpack(model_bytes)
    return sum(fb.op_name(m.operatorCodes[op.opcodeIndex]) == "CUSTOM"
               for op in m.subgraphs[0].operators)


def test_auto_picks_each_tensors_smallest_encoding_bit_exactly(sparse_and_clustered):
    model_bytes, x = sparse_and_clustered
    cands = {c.index: c for c in encode_candidates(model_bytes)}
    r = encode(model_bytes, verify_data=x[:8])
    kinds = {t.name.split("/")[1]: t.encoding for t in r.tensors}
    assert kinds["sparse_1"] == "prune" and kinds["clustered_1"] == "lut"
    for t in r.tensors:
        c = cands[t.index]
        assert t.encoded_bytes == min(c.encoded_bytes(k) for k in c.encodings)
        assert t.nbytes == c.nbytes and t.host_arena_added > 0
    sparse = next(t for t in r.tensors if t.encoding == "prune")
    kept = (cands[sparse.index].nbytes * 5) // 100
    assert sparse.encoded_bytes < 9216 // 8 + 16 + 2 * kept  # a bit per weight plus kept values
    assert r.flash_after == len(r.model_bytes) < r.flash_before
    assert r.flash_saved > 0.85 * sum(t.nbytes - t.encoded_bytes for t in r.tensors)
    assert r.host_arena_added > 0 and r.verified_samples == 8
    assert _decodes(r.model_bytes) == len(r.tensors)  # one DECODE before each consumer
    xq = tflite_export.quantize(x[8:40], model_bytes)
    np.testing.assert_array_equal(tflite_export.run_tflm(r.model_bytes, xq),
                                  tflite_export.run_tflm(model_bytes, xq))
    assert f"| {r.flash_before} | {r.flash_after} | {r.host_arena_added} |" in r.to_markdown()
    d = r.to_dict()
    assert d["flash_saved"] == r.flash_saved
    # the arena figures are the 64-bit host build's, and report.json names them so
    assert d["host_arena_before"] == tflite_export.measure_arena(model_bytes).host_bytes
    assert d["host_arena_after"] == tflite_export.measure_arena(r.model_bytes).host_bytes
    assert not {k for k in d if k.startswith("arena")}


def test_arena_budget_leaves_the_large_decoded_tensor_out(sparse_and_clustered):
    model_bytes, x = sparse_and_clustered
    before = tflite_export.measure_arena(model_bytes).host_bytes
    r = encode(model_bytes, arena_budget=before + 4096, verify_data=x[:4], measure_each=False)
    assert [t.index for t in r.tensors] == [_index(model_bytes, "clustered")]
    assert r.host_arena_after <= before + 4096 and r.flash_saved > 0
    assert r.to_dict()["host_arena_budget"] == before + 4096
    with pytest.raises(ArenaBudgetError, match=rf"needs a {before}-byte TFLM arena .* over arena_budget=100") as e:
        encode(model_bytes, arena_budget=100)
    assert isinstance(e.value, EncodeError) and (e.value.arena_bytes, e.value.budget) == (before, 100)


def test_encodings_and_tensors_select(sparse_and_clustered):
    model_bytes, x = sparse_and_clustered
    both = np.array([_index(model_bytes, "sparse"), _index(model_bytes, "clustered")])
    r = encode(model_bytes, encodings="huffman", tensors=both, verify_data=x[:4],
               measure_each=False)
    assert [t.encoding for t in r.tensors] == ["huffman", "huffman"]
    assert [t.index for t in r.tensors] == both.tolist()  # in the order asked
    only = encode(model_bytes, tensors=lambda c: c.nbytes > 4096, verify_data=x[:4],
                  measure_each=False)
    assert [t.index for t in only.tensors] == [_index(model_bytes, "sparse")]
    with pytest.raises(EncodeError, match=r"encodings='auto' or some of \['lut', 'prune', 'huffman'\]"):
        encode(model_bytes, encodings="zip")
    with pytest.raises(EncodeError, match=r"tensor 0 can not be encoded"):
        encode(model_bytes, tensors=[0])
    with pytest.raises(EncodeError, match="tensors='auto'"):
        encode(model_bytes, tensors="all")


def test_auto_keeps_only_tensors_that_shrink_the_encoded_model(sparse_and_clustered):
    model_bytes, x = sparse_and_clustered
    r = encode(model_bytes, min_bytes=1, verify_data=x[:4], measure_each=False)
    chosen = [t.index for t in r.tensors]
    assert chosen and r.flash_after < r.flash_before
    for i in chosen:  # leaving any one out gives a model no smaller
        others = [j for j in chosen if j != i]
        without = (encode(model_bytes, tensors=others, verify_data=x[:2], measure_each=False)
                   .flash_after if others else len(model_bytes))
        assert without >= r.flash_after, (i, without, r.flash_after)


def test_never_returns_a_larger_model():
    tiny = tflite_export.testing.tiny_model()
    forced = encode(tiny, tensors=[1, 2], verify_samples=2, measure_each=False)
    assert forced.flash_after > forced.flash_before  # the DECODE bookkeeping costs more
    r = encode(tiny, min_bytes=1, verify_samples=2)
    assert r.model_bytes == tiny and r.tensors == [] and r.flash_saved == 0
