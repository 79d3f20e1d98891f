"""Insert TFLM ``DECODE`` operators for encoded constant tensors (subgraph 0).

TFLM's DECODE operator (custom code ``TFLM_DECODE``, no options) takes pairs
of inputs, an encoded tensor and its ancillary tensor, and writes one decoded
tensor per pair into the arena. Both inputs must be constant: a DECODE output
can not feed another DECODE, so encodings do not chain. The kernel reads the
decoded tensor's type, shape and quantization to decode, so the output tensor
is a copy of the original one without data.

One DECODE runs right before each operator that reads encoded tensors and
decodes all of them, as TFLM's own compressor does: a decoded tensor then lives
only until its consumer ran, which keeps the arena cost to the largest decoded
set of one operator rather than the sum.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import flatbuffers
import numpy as np

from tflite_export import _flatbuffer as fb

__all__ = ["DECODE_CUSTOM_CODE", "Encoding", "insert_decodes", "pack_aligned"]

#: Custom code of TFLM's DECODE operator.
DECODE_CUSTOM_CODE = "TFLM_DECODE"

_CUSTOM = 32  # BuiltinOperator.CUSTOM


@dataclass(frozen=True)
class Encoding:
    """One tensor's encoded form, as the DECODE kernel reads it.

    Attributes:
        kind: ``"lut"``, ``"prune"`` or ``"huffman"``.
        data: the encoded bytes (DECODE input ``2*i``).
        ancillary: the 16-byte decode common metadata plus the decoder's
            tables (DECODE input ``2*i + 1``).
    """

    kind: str
    data: bytes
    ancillary: bytes

    @property
    def nbytes(self) -> int:
        """Bytes of data the encoded tensor puts in the flatbuffer."""
        return len(self.data) + len(self.ancillary)


def _decode_opcode(m) -> int:
    for i, code in enumerate(m.operatorCodes):
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        if fb.op_name(code) == "CUSTOM" and custom == DECODE_CUSTOM_CODE:
            return i
    code = fb.schema.OperatorCodeT()
    code.builtinCode = _CUSTOM
    code.deprecatedBuiltinCode = _CUSTOM
    code.customCode = DECODE_CUSTOM_CODE
    code.version = 1
    m.operatorCodes.append(code)
    return len(m.operatorCodes) - 1


def _add_buffer(m, data: bytes) -> int:
    buf = fb.schema.BufferT()
    buf.data = np.frombuffer(bytes(data), dtype=np.uint8)  # numpy packs fast
    m.buffers.append(buf)
    return len(m.buffers) - 1


def _add_tensor(sg, name: str | None, shape, tensor_type: int, buffer: int,
                quantization=None) -> int:
    t = fb.schema.TensorT()
    t.name = name
    t.shape = list(shape)
    t.type = tensor_type
    t.buffer = buffer
    t.quantization = quantization
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _str(name) -> str:
    return name.decode() if isinstance(name, bytes) else (name or "")


def insert_decodes(model_bytes: bytes, encodings: dict[int, Encoding]) -> bytes:
    """Store the given tensors of subgraph 0 encoded and decode them at run time.

    Args:
        model_bytes: `.tflite` flatbuffer bytes.
        encodings: tensor index -> its `Encoding`. Each tensor must be a
            constant read by at least one operator.

    Returns:
        The rewritten, buffer-aligned flatbuffer bytes (the input when
        ``encodings`` is empty).
    """
    if not encodings:
        return bytes(model_bytes)
    m = fb.unpack(model_bytes)
    sg = m.subgraphs[0]
    opcode = _decode_opcode(m)
    uint8 = fb.schema.TensorType.UINT8
    kept = {t.buffer for i, t in enumerate(sg.tensors) if i not in encodings}
    kept |= {t.buffer for other in m.subgraphs[1:] for t in other.tensors or []}
    decoded_copy, ancillary_of = {}, {}
    for index, enc in encodings.items():
        t = sg.tensors[index]
        decoded_copy[index] = (t.shape, t.type, t.quantization, _str(t.name))
        if t.buffer not in kept:  # no plain tensor reads the raw values any more
            m.buffers[t.buffer].data = None
        t.buffer = _add_buffer(m, enc.data)
        # the decoded copy keeps the name; the encoded inputs go unnamed (flash)
        t.shape, t.type, t.quantization, t.name = [len(enc.data)], uint8, None, None
        if enc.ancillary not in ancillary_of:
            ancillary_of[enc.ancillary] = _add_tensor(
                sg, None, [len(enc.ancillary)], uint8, _add_buffer(m, enc.ancillary))
    operators = []
    for op in sg.operators:
        inputs = [int(i) for i in op.inputs]
        read = [i for i in dict.fromkeys(inputs) if i in encodings]
        if read:
            dec = fb.schema.OperatorT()
            dec.opcodeIndex = opcode
            dec.inputs, dec.outputs = [], []
            for i in read:
                shape, ttype, quant, name = decoded_copy[i]
                out = _add_tensor(sg, name, shape, ttype, 0, quant)
                dec.inputs += [i, ancillary_of[encodings[i].ancillary]]
                dec.outputs.append(out)
                inputs = [out if j == i else j for j in inputs]
            op.inputs = inputs
            operators.append(dec)
        operators.append(op)
    sg.operators = operators
    return pack_aligned(m)


def pack_aligned(m) -> bytes:
    """Serialize a schema model object and align its buffers as TFLM expects.

    TFLM reads encoded data as 32-bit words and tables as their element type,
    so every buffer is aligned with TFLM's own flatbuffer alignment tool.
    """
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    with tempfile.TemporaryDirectory(prefix="tinycompress-encode-") as tmp:
        src, dst = os.path.join(tmp, "in.tflite"), os.path.join(tmp, "out.tflite")
        with open(src, "wb") as f:
            f.write(builder.Output())
        tflite_flatbuffer_align_wrapper.align_tflite_model(src, dst)
        with open(dst, "rb") as f:
            return f.read()
