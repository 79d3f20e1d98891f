"""Each encoder against TFLM's own decoder: the encoded model's outputs equal the original's."""

import numpy as np
import pytest

import tflite_export
from tflite_export import _flatbuffer as fb
from tflite_export.encode import encode_huffman, encode_lut, encode_prune, insert_decodes, prune_fill
from tflite_export.encode._rewrite import pack_aligned
from tflite_export.encode.huffman import _Tables, _canonical, code_lengths


def _weights(model_bytes):
    """{name part: (index, tensor)} of the constant tensors operators read."""
    m = fb.unpack(model_bytes)
    sg = m.subgraphs[0]
    used = {int(i) for op in sg.operators for i in op.inputs if i >= 0}
    return {i: t for i, t in enumerate(sg.tensors)
            if i in used and m.buffers[t.buffer].data is not None}


def _with_values(model_bytes, values_by_index):
    m = fb.unpack(model_bytes)
    for i, v in values_by_index.items():
        t = m.subgraphs[0].tensors[i]
        m.buffers[t.buffer].data = np.frombuffer(np.ascontiguousarray(v).tobytes(), np.uint8)
    return pack_aligned(m)


def _values(model_bytes, i):
    m = fb.unpack(model_bytes)
    t = m.subgraphs[0].tensors[i]
    return np.frombuffer(bytes(m.buffers[t.buffer].data), fb.numpy_dtype(t.type)).reshape(t.shape)


def _assert_same_outputs(a, b, seed=0):
    x = np.random.default_rng(seed).integers(-128, 128, (12, 8, 8, 3)).astype(np.int8)
    np.testing.assert_array_equal(tflite_export.run_tflm(b, x), tflite_export.run_tflm(a, x))


def _sparse(model_bytes, keep=0.2, seed=0):
    rng = np.random.default_rng(seed)
    new = {}
    for i, t in _weights(model_bytes).items():
        v = _values(model_bytes, i).copy()
        v[rng.random(v.shape) > keep] = 0
        new[i] = v
    return _with_values(model_bytes, new)


def test_prune_decodes_per_tensor_per_channel_and_int32(conv_model):
    """Conv (per channel, axis 0), depthwise (per channel, last axis), dense and int32 biases."""
    sparse = _sparse(conv_model[1])
    encodings = {}
    for i, t in _weights(sparse).items():
        v = _values(sparse, i)
        q = t.quantization
        fill = prune_fill(v.shape, v.dtype, q.zeroPoint, q.quantizedDimension)
        e = encode_prune(v, fill)
        kept = int(np.count_nonzero(v))
        assert len(e.data) == (v.size + 7) // 8 and len(e.ancillary) == 16 + kept * v.itemsize
        encodings[i] = e
    assert {fb.tensor_type_name(t.type) for t in _weights(sparse).values()} == {"INT8", "INT32"}
    out = insert_decodes(sparse, encodings)
    tflite_export.validate(out)
    _assert_same_outputs(sparse, out)


def test_prune_writes_each_channels_zero_point(conv_model):
    """int8 per-channel zero points: a pruned position decodes to its channel's zero point."""
    model = _sparse(conv_model[1])
    m = fb.unpack(model)
    dw = next(i for i, t in _weights(model).items() if b"dw" in t.name and t.type == 9)
    t = m.subgraphs[0].tensors[dw]
    zps = np.array([3, -2, 0, 5][: len(t.quantization.scale)], np.int64)
    t.quantization.zeroPoint = zps
    v = _values(model, dw).copy()
    fill = prune_fill(v.shape, v.dtype, zps, t.quantization.quantizedDimension)
    assert fill.shape == v.shape and (fill[..., 0] == 3).all() and (fill[..., 3] == 5).all()
    v[v == 0] = fill[v == 0]  # the "pruned" value of each channel is its zero point
    m.buffers[t.buffer].data = np.frombuffer(v.tobytes(), np.uint8)
    model = pack_aligned(m)
    e = encode_prune(v, fill)
    assert len(e.ancillary) == 16 + int((v != fill).sum())
    _assert_same_outputs(model, insert_decodes(model, {dw: e}))


def test_prune_refuses_what_the_decoder_cannot_write():
    assert prune_fill((4,), np.uint8, None, None) is None
    assert prune_fill((4,), np.int16, [1], 0) is None  # only int8 decodes non-zero zero points
    assert prune_fill((2, 3, 4), np.int8, [1, 2, 3], 1) is None  # middle axis


def _skewed(shape, symbols, seed=0):
    rng = np.random.default_rng(seed)
    p = 0.5 ** np.arange(1, len(symbols) + 1)
    return rng.choice(np.asarray(symbols), size=shape, p=p / p.sum())


@pytest.mark.parametrize("table_bits", [16, 32])
def test_huffman_decodes_with_16_and_32_bit_tables(conv_model, table_bits):
    model_bytes = conv_model[1]
    int8 = {i: t for i, t in _weights(model_bytes).items() if t.type == 9}
    new = {i: _skewed(t.shape, np.arange(-40, 40, 3), seed=i).astype(np.int8)
           for i, t in int8.items()}
    model = _with_values(model_bytes, new)
    encodings = {i: encode_huffman(v, table_bits=table_bits) for i, v in new.items()}
    assert all((e.ancillary[5] & 1) == (table_bits == 32) for e in encodings.values())
    for i, e in encodings.items():  # at most the code's bits, in whole words, plus a pad word
        lengths = code_lengths(new[i])
        bits = sum(lengths[int(s)] for s in new[i].ravel())
        assert len(e.data) == 4 * (-(-bits // 32)) + 4
    out = insert_decodes(model, encodings)
    tflite_export.validate(out)
    _assert_same_outputs(model, out)


def _reference_decode(encoding, count, dtype):
    """The decoder's walk, written from decode_state_huffman.cc, in Python."""
    head = encoding.ancillary
    wide, root = head[5] & 1, (head[5] >> 4) + 1
    table = np.frombuffer(head[16:], "<u4" if wide else "<u2").astype(np.int64)
    flag, shift, mask = (1 << 31, 27, 0x07FFFFFF) if wide else (1 << 15, 11, 0x07FF)
    bits = np.unpackbits(np.frombuffer(encoding.data, np.uint8))
    pos, out = 0, []
    for _ in range(count):
        width, offset = root, 0
        while True:
            index = int("".join(map(str, bits[pos:pos + width])) or "0", 2)
            entry = table[offset + index]
            if entry & flag:
                pos += (entry >> shift) & 0xF
                break
            pos += width
            offset, width = offset + index + (entry & mask), ((entry >> shift) & 0xF) + 1
        out.append(entry & mask)
    return np.asarray(out, np.int64).astype(np.uint16 if dtype == np.int16 else np.uint8).view(dtype)


def test_huffman_int16_and_deep_codes_round_trip():
    """int16 needs 32-bit tables; Fibonacci counts give codes deeper than one sub-table."""
    rng = np.random.default_rng(0)
    v16 = _skewed(500, [-30000, -1, 0, 7, 1234, 32767], seed=1).astype(np.int16)
    e = encode_huffman(v16)
    assert e.ancillary[5] & 1 == 1
    np.testing.assert_array_equal(_reference_decode(e, v16.size, np.int16), v16)
    fib = [1, 1]
    while len(fib) < 24:
        fib.append(fib[-1] + fib[-2])
    deep = np.repeat(np.arange(-12, 12, dtype=np.int8), fib)
    rng.shuffle(deep)
    assert max(code_lengths(deep).values()) == 23
    e = encode_huffman(deep)
    np.testing.assert_array_equal(_reference_decode(e, deep.size, np.int8), deep)
    tables = _Tables(_canonical(code_lengths(deep)), 4).entries
    assert any(not is_symbol for is_symbol, _, _ in tables[16:])  # a sub-table points further


def test_lut_decodes_first_and_last_axis_tables(conv_model):
    model_bytes = conv_model[1]
    rng = np.random.default_rng(0)
    new, encodings = {}, {}
    for i, t in _weights(model_bytes).items():
        if t.type != 9:
            continue
        q = t.quantization
        axis = int(q.quantizedDimension) if len(q.scale) > 1 else None
        v = rng.choice(np.array([-90, -5, 0, 7, 60], np.int8), size=tuple(t.shape))
        if axis is not None:  # a different table per channel
            view = [1] * v.ndim
            view[axis] = -1
            v = (v + np.arange(v.shape[axis]).reshape(view)).astype(np.int8)
        new[i], encodings[i] = v, encode_lut(v, axis)
        assert encodings[i].ancillary[5] == 3 and len(encodings[i].data) == (v.size * 3 + 7) // 8
    assert {int(t.quantization.quantizedDimension) for i, t in _weights(model_bytes).items()
            if i in new and len(t.quantization.scale) > 1} == {0, 3}
    model = _with_values(model_bytes, new)
    _assert_same_outputs(model, insert_decodes(model, encodings))


def test_decode_does_not_chain(conv_model):
    """TFLM's DECODE needs constant inputs (decode.cc), so Huffman-coded LUT indices can not be
    decoded by a Huffman DECODE feeding a LUT DECODE: the runtime refuses the model. If a
    future runtime accepts it, `encode` could offer the chain."""
    from tflite_export.errors import RuntimeCheckError

    model_bytes = conv_model[1]
    dense = next(i for i, t in _weights(model_bytes).items() if b"dense" in t.name and t.type == 9)
    v = np.random.default_rng(0).choice(np.array([-50, 0, 50], np.int8), size=_values(model_bytes, dense).shape)
    model = _with_values(model_bytes, {dense: v})
    lut = encode_lut(v, None)
    out = fb.unpack(insert_decodes(model, {dense: lut}))
    sg = out.subgraphs[0]
    decode = next(op for op in sg.operators if fb.op_name(out.operatorCodes[op.opcodeIndex]) == "CUSTOM")
    indices = np.frombuffer(lut.data, np.int8)
    huff = encode_huffman(indices)
    coded = fb.schema.TensorT()
    coded.shape, coded.type, coded.buffer = [len(huff.data)], fb.schema.TensorType.UINT8, len(out.buffers)
    anc = fb.schema.TensorT()
    anc.shape, anc.type, anc.buffer = [len(huff.ancillary)], fb.schema.TensorType.UINT8, len(out.buffers) + 1
    for data in (huff.data, huff.ancillary):
        buf = fb.schema.BufferT()
        buf.data = np.frombuffer(data, np.uint8)
        out.buffers.append(buf)
    mid = sg.tensors[decode.inputs[0]]
    mid.type, mid.buffer = fb.schema.TensorType.INT8, 0  # now the Huffman DECODE's output
    sg.tensors += [coded, anc]
    first = fb.schema.OperatorT()
    first.opcodeIndex, first.inputs, first.outputs = decode.opcodeIndex, [len(sg.tensors) - 2,
                                                                          len(sg.tensors) - 1], [decode.inputs[0]]
    sg.operators.insert(sg.operators.index(decode), first)
    chained = pack_aligned(out)
    x = np.zeros((1, 8, 8, 3), np.int8)
    with pytest.raises(RuntimeCheckError, match="failed to allocate tensors"):  # Prepare refuses
        tflite_export.run_tflm(chained, x)
