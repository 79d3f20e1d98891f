"""Hand-built hostile `.tflite` files for the robustness tests (no TensorFlow)."""

from __future__ import annotations

import flatbuffers

from tflite_export import _flatbuffer as fb

s = fb.schema


def shared_table_model(refs: int) -> bytes:
    """A model whose ``refs`` subgraph entries all point at one subgraph whose
    ``refs`` tensor entries all point at one tensor: ``refs**2`` tensors unpacked
    from a file of about ``8 * refs`` bytes."""
    b = flatbuffers.Builder(1024)
    s.TensorStartShapeVector(b, 1)
    b.PrependInt32(1)
    shape = b.EndVector()
    s.TensorStart(b)
    s.TensorAddShape(b, shape)
    s.TensorAddType(b, s.TensorType.INT8)
    tensor = s.TensorEnd(b)
    s.SubGraphStartTensorsVector(b, refs)
    for _ in range(refs):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    s.SubGraphStart(b)
    s.SubGraphAddTensors(b, tensors)
    subgraph = s.SubGraphEnd(b)
    s.ModelStartSubgraphsVector(b, refs)
    for _ in range(refs):
        b.PrependUOffsetTRelative(subgraph)
    subgraphs = b.EndVector()
    s.BufferStart(b)
    buffer = s.BufferEnd(b)
    s.ModelStartBuffersVector(b, 1)
    b.PrependUOffsetTRelative(buffer)
    buffers = b.EndVector()
    s.ModelStart(b)
    s.ModelAddVersion(b, 3)
    s.ModelAddSubgraphs(b, subgraphs)
    s.ModelAddBuffers(b, buffers)
    b.Finish(s.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _repack(m) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def offline_plan_on_empty_buffer(model: bytes) -> bytes:
    """``model`` with OfflineMemoryAllocation metadata naming an empty buffer
    (TFLM dereferences the missing data: SIGSEGV)."""
    m = fb.unpack(model)
    m.buffers.append(s.BufferT())
    entry = s.MetadataT()
    entry.name = b"OfflineMemoryAllocation"
    entry.buffer = len(m.buffers) - 1
    m.metadata = list(m.metadata or []) + [entry]
    return _repack(m)


def relabelled(model: bytes, old: str, new: str) -> bytes:
    """``model`` with every ``old`` operator code turned into ``new``."""
    m = fb.unpack(model)
    for code in m.operatorCodes:
        if fb.op_name(code) == old:
            code.builtinCode = getattr(s.BuiltinOperator, new)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    return _repack(m)


def with_input_shape(model: bytes, shape: list[int]) -> bytes:
    """``model`` whose first input tensor declares ``shape``."""
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    sg.tensors[int(sg.inputs[0])].shape = shape
    return _repack(m)


def single_op_model(op: str, shape: list[int], type_name: str = "INT8") -> bytes:
    """A one-operator model ``y = op(x)`` with input and output of ``shape``,
    quantized with scale 1/16 and zero point 0."""
    m = s.ModelT()
    m.version = 3
    code = s.OperatorCodeT()
    code.builtinCode = getattr(s.BuiltinOperator, op)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    m.operatorCodes = [code]
    m.buffers = [s.BufferT()]
    tensors = []
    for k, name in enumerate((b"x", b"y")):
        t = s.TensorT()
        t.shape, t.name, t.buffer = list(shape), name, 0
        t.type = getattr(s.TensorType, type_name)
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = [1 / 16], [0]
        t.quantization = q
        tensors.append(t)
    operator = s.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0], [1]
    sg = s.SubGraphT()
    sg.tensors, sg.operators, sg.inputs, sg.outputs = tensors, [operator], [0], [1]
    m.subgraphs = [sg]
    return _repack(m)


def without_vector(model: bytes, field: str) -> bytes:
    """``model`` whose subgraph 0 (``"outputs"``...) or first operator
    (``"op.inputs"``...) lacks the vector ``field`` (TFLM dereferences it: SIGSEGV)."""
    m = fb.unpack(model)
    owner = m.subgraphs[0]
    if field.startswith("op."):
        owner, field = owner.operators[0], field[3:]
    setattr(owner, field, None)
    return _repack(m)
