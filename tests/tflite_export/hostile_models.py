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
