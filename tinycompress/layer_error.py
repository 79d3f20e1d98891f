"""Where int8 loses accuracy: compare every TFLM tensor with the float layer.

The converter names each output tensor after the Keras layers that produced it
(``model/conv2d/Relu;...``). For every Keras layer, the last int8 tensor in
execution order whose name mentions the layer and whose size matches the
layer's output is read back from TFLM (the interpreter keeps every tensor),
dequantized, and compared with the float activation for the same input. Model
outputs are matched to the graph's output tensors. A fused op's tensor (conv +
batchnorm + relu) counts for the last of its layers only.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export.io_details import quantize
from tflite_export.runtime import tflm_tensors
from tinycompress.errors import ExportError
from tinycompress.loading import LoadedModel

__all__ = ["LayerError", "layer_errors"]


@dataclass(frozen=True)
class LayerError:
    """int8 error of one layer's output.

    Attributes:
        layer: Keras layer name.
        op: TFLite op producing the compared tensor.
        tensor: TFLite tensor index.
        relative_rms: RMS(int8 - float) / RMS(float) (0 = exact).
        max_abs: largest absolute difference.
    """

    layer: str
    op: str
    tensor: int
    relative_rms: float
    max_abs: float

    def to_dict(self) -> dict:
        """JSON-ready dictionary of the fields."""
        return asdict(self)


def _candidates(model: bytes):
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    rows = []
    for op in sg.operators or []:
        for t in op.outputs:
            tensor = sg.tensors[t]
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else (tensor.name or "")
            q = tensor.quantization
            if q is None or q.scale is None or len(q.scale) != 1:
                continue
            rows.append((int(t), fb.op_name(m.operatorCodes[op.opcodeIndex]), name,
                         int(np.prod(tensor.shape)), float(q.scale[0]), int(q.zeroPoint[0])))
    return rows, [int(i) for i in sg.outputs]


def layer_errors(loaded: LoadedModel, model: bytes, x, *, top: int | None = None) -> list[LayerError]:
    """Per-layer error of an int8 model against its float Keras model.

    Args:
        loaded: the float model (`tinycompress.load_model`); a Keras model.
        model: the converted `.tflite` bytes before slimming (names needed).
        x: float inputs (array or list per input); the first sample is used.
        top: keep the ``top`` worst layers. Default None: all matched layers.

    Returns:
        `LayerError` rows, worst relative error first.

    Raises:
        ExportError: the model is not a Keras model, or names were slimmed away.
    """
    import keras

    kmodel = loaded.model
    if loaded.source == "saved_model" or not hasattr(kmodel, "layers"):
        raise ExportError(
            "per-layer error needs the Keras model (layer outputs); a SavedModel has none. "
            "Load the .keras/.h5 file instead."
        )
    rows, graph_out = _candidates(model)
    if rows and not any(r[2] for r in rows):
        raise ExportError("the model's tensor names were removed; pass the unslimmed model.")
    xs = [np.asarray(a, np.float32)[:1] for a in (x if isinstance(x, (list, tuple)) else [x])]
    layers = [lyr for lyr in kmodel.layers if not isinstance(lyr, keras.layers.InputLayer)]
    outputs_keras = [lyr.output for lyr in layers]
    if loaded.source == "tf_keras":
        import tf_keras

        probe = tf_keras.Model(kmodel.inputs, outputs_keras)
    else:
        probe = keras.Model(kmodel.inputs, outputs_keras)
    acts = probe(xs, training=False)
    acts = [np.asarray(a) for a in (acts if isinstance(acts, (list, tuple)) else [acts])]
    model_outputs = {id(o) for o in (kmodel.outputs or [])}
    matches = []
    for k, (lyr, act) in enumerate(zip(layers, acts)):
        size = int(np.prod(act.shape[1:])) if act.ndim > 1 else int(act.size)
        if id(lyr.output) in model_outputs:
            pick = [r for r in rows if r[0] in graph_out and r[3] == size]
        else:
            # Keras 3 name scopes may add a "_N" suffix to the layer name.
            scope = re.compile(rf"/{re.escape(lyr.name)}(_\d+)?/")
            pick = [r for r in rows if scope.search(f"/{r[2]}/".replace(";", "/")) and r[3] == size]
        if pick:
            matches.append((lyr.name, act[0], pick[-1]))
    # A fused op (conv + batchnorm + relu) writes one tensor named after all its
    # layers; it is the output of the last of them only.
    last = {m[2][0]: k for k, m in enumerate(matches)}
    matches = [m for k, m in enumerate(matches) if last[m[2][0]] == k]
    if not matches:
        return []
    xq = [quantize(a, model, i) for i, a in enumerate(xs)]
    values = tflm_tensors(model, xq, [m[2][0] for m in matches])
    result = []
    for lname, act, (t, op, _, _, scale, zp) in matches:
        deq = (values[t].astype(np.float32).reshape(-1) - zp) * scale
        ref = act.astype(np.float32).reshape(-1)
        diff = deq - ref
        rms_ref = float(np.sqrt(np.mean(ref**2))) or 1.0
        result.append(LayerError(lname, op, t, float(np.sqrt(np.mean(diff**2))) / rms_ref,
                                 float(np.max(np.abs(diff)))))
    result.sort(key=lambda e: e.relative_rms, reverse=True)
    return result[:top] if top else result
