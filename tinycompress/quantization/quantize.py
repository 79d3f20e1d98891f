"""`quantize_model`: make a Keras model simulate TFLite int8 inference while training.

The model is first folded (`fold_batchnorm`) and each SeparableConv2D is split
into the DepthwiseConv2D and 1x1 Conv2D that TFLite runs. Then fake
quantization is placed exactly where the converter puts int8 tensors:

* the model inputs;
* each Conv/Depthwise/Dense output, after a fused ReLU/ReLU6 (a ReLU layer that
  is the only reader of a linear layer's or Add's output is fused into it);
* Add, Concatenate and GlobalAveragePooling outputs and standalone ReLUs;
* nowhere after MaxPooling, Flatten, Reshape, Dropout and ZeroPadding (they keep
  their input's scale); AveragePooling re-quantizes with its input's range;
* not before a Concatenate (its inputs take the concatenation's range);
* after a Softmax, sigmoid or tanh (layer or activation of a Dense/Conv, which
  is split off into an ``Activation`` layer): TFLite fixes those ranges; sigmoid
  and tanh outputs get a `FixedRangeQuantizer` with TFLite's grid;
* LSTM, GRU and SimpleRNN are wrapped in `QuantizeRecurrent`, which quantizes
  their kernels, state and (unrolled forms) gate activations inside.

Kernels are fake-quantized symmetric, narrow range, per channel (Dense per
tensor unless `QATConfig.per_channel_dense`). Convert the trained QAT model
itself with `tinycompress.convert`: the converter takes every int8 scale from
the trained ranges. `strip_qat` returns the plain float model.
"""

from __future__ import annotations

import keras

from tinycompress.core import LayerCall, LayerGraph, Replacement, input_name, rewrite
from tinycompress.quantization.callbacks import activation_quantizers
from tinycompress.quantization.config import QATConfig
from tinycompress.errors import UnsupportedLayerError
from tinycompress.quantization.fold import fold_batchnorm, foldable_pairs
from tinycompress.quantization.quantizers import FIXED_RANGES, ActivationQuantizer, FixedRangeQuantizer
from tinycompress.quantization.recurrent import RECURRENT_LAYERS, QuantizeRecurrent, recurrent_problems
from tinycompress.quantization.wrapper import WRAPPABLE_LAYERS, QuantizeWrapper, activation_name, wrap_problems

__all__ = ["SUPPORTED_LAYERS", "quantize_model", "strip_qat", "quantization_ranges"]

L = keras.layers
_SAME_SCALE = (L.MaxPooling1D, L.MaxPooling2D, L.Flatten, L.Reshape, L.Dropout,
               L.ZeroPadding1D, L.ZeroPadding2D, L.Identity)
_SHARED_RANGE = (L.AveragePooling1D, L.AveragePooling2D)
_OWN_RANGE = (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.Add, L.Concatenate)
_ACTIVATIONS = (L.ReLU, L.Activation, L.Softmax)
_WEIGHTED = WRAPPABLE_LAYERS + (L.SeparableConv2D,)

#: Layer types `quantize_model` accepts (BatchNormalization only where it folds).
SUPPORTED_LAYERS = (L.InputLayer, L.BatchNormalization) + _WEIGHTED + _SAME_SCALE + \
    _SHARED_RANGE + _OWN_RANGE + _ACTIVATIONS + RECURRENT_LAYERS
#: Activations `quantize_model` simulates.
_SIMULATED = ("relu", "relu6", "linear", "softmax") + tuple(FIXED_RANGES)


def _activation_kind(layer: keras.layers.Layer) -> str | None:
    """'relu', 'relu6', 'softmax', 'linear' for activation layers, else None."""
    if isinstance(layer, L.Softmax):
        return "softmax" if layer.axis in (-1, [-1]) else "softmax-axis"
    if isinstance(layer, L.ReLU):
        if layer.negative_slope or layer.threshold:
            return "leaky"
        return {None: "relu", 6.0: "relu6"}.get(
            None if layer.max_value is None else float(layer.max_value), "clipped")
    if isinstance(layer, L.Activation):
        return activation_name(layer)
    return None


def _problems(graph: LayerGraph) -> list[str]:
    problems = []
    folds = foldable_pairs(graph)
    for call in graph.calls:
        layer = call.layer
        where = f"'{layer.name}' ({type(layer).__name__})"
        if isinstance(layer, keras.Model):
            problems.append(f"{where}: nested model; build one flat Functional model")
        elif not isinstance(layer, SUPPORTED_LAYERS) or isinstance(
            layer, (L.Conv1DTranspose, L.Conv2DTranspose)
        ):
            problems.append(f"{where}: layer type not supported")
        elif isinstance(layer, L.BatchNormalization) and id(layer) not in folds:
            problems.append(
                f"{where}: cannot be folded (it must directly follow a Conv/Depthwise/"
                "Dense layer with linear activation whose output only it reads)")
        elif isinstance(layer, L.SeparableConv2D):
            act = activation_name(layer)
            if act not in ("linear", "relu", "relu6") or layer.data_format != "channels_last":
                problems.append(f"{where}: activation '{act}' / data_format "
                                f"'{layer.data_format}' not supported")
        elif isinstance(layer, _WEIGHTED):
            problems += [f"{where}: {p}" for p in wrap_problems(layer, allow_split=True)]
        elif isinstance(layer, RECURRENT_LAYERS):
            problems += [f"{where}: {p}" for p in recurrent_problems(layer)]
        kind = _activation_kind(layer) if isinstance(layer, _ACTIVATIONS) else None
        softmax = kind == "softmax" or (
            isinstance(layer, _WEIGHTED) and activation_name(layer) == "softmax")
        if kind is not None and kind not in _SIMULATED:
            problems.append(f"{where}: activation '{kind}' (use relu, relu6, sigmoid, tanh, "
                            "or softmax at the output)")
        if softmax and not all(id(t) in graph.output_ids for t in call.outputs):
            problems.append(f"{where}: softmax is only supported as a model output")
    return problems


def _split_separable(layer: L.SeparableConv2D) -> tuple[L.DepthwiseConv2D, L.Conv2D]:
    """A DepthwiseConv2D + 1x1 Conv2D pair computing what `layer` computes."""
    dw = L.DepthwiseConv2D(
        layer.kernel_size, strides=layer.strides, padding=layer.padding,
        depth_multiplier=layer.depth_multiplier, dilation_rate=layer.dilation_rate,
        use_bias=False, name=f"{layer.name}_depthwise")
    pw = L.Conv2D(layer.filters, 1, activation=layer.activation, use_bias=layer.use_bias,
                  name=layer.name)
    return dw, pw


class _Builder:
    """Rebuilds a folded graph with wrappers and activation quantizers."""

    def __init__(self, graph: LayerGraph, config: QATConfig) -> None:
        self.graph = graph
        self.config = config
        self.quantizer_of: dict[int, ActivationQuantizer] = {}
        self.clones: dict[int, keras.layers.Layer] = {}

    def quantizer(self, name: str) -> ActivationQuantizer:
        return ActivationQuantizer(ema_decay=self.config.ema_decay, name=name)

    def keeps_range(self, call: LayerCall) -> bool:
        """Whether this call's output gets its own fake quantization."""
        out = call.outputs[0]
        nxt = self.graph.sole_consumer(out)
        if nxt is None:
            return True
        if isinstance(nxt.layer, L.Concatenate):
            return False
        fusable = isinstance(call.layer, L.Add) or (
            isinstance(call.layer, _WEIGHTED) and activation_name(call.layer) == "linear")
        return not (fusable and _activation_kind(nxt.layer) in ("relu", "relu6"))

    def add_quantizer(self, y, name: str):
        q = self.quantizer(name)
        z = q(y)
        self.quantizer_of[id(z)] = q
        return z

    def fixed(self, y, activation: str, name: str):
        """`y` through TFLite's fixed sigmoid/tanh output grid."""
        q = FixedRangeQuantizer(activation, name=name)
        z = q(y)
        self.quantizer_of[id(z)] = q
        return z

    def wrap(self, layer, x, *, per_channel: bool, keep: bool, weights: list):
        config = layer.get_config()
        act = activation_name(layer)
        split = act in ("softmax",) + tuple(FIXED_RANGES)
        if split:
            config["activation"] = "linear"
        inner = layer.__class__.from_config(config)
        wrapper = QuantizeWrapper(inner, per_channel=per_channel, name=f"quant_{layer.name}")
        y = wrapper(x)
        inner.set_weights(weights)
        if keep or split:
            y = self.add_quantizer(y, f"{layer.name}_quant")
        if act == "softmax":
            return L.Softmax(name=f"{layer.name}_softmax")(y)
        if split:
            y = L.Activation(act, name=f"{layer.name}_{act}")(y)
            return self.fixed(y, act, f"{layer.name}_{act}_quant")
        return y

    def wrap_recurrent(self, layer, x):
        inner = layer.__class__.from_config(layer.get_config())
        wrapper = QuantizeRecurrent(inner, ema_decay=self.config.ema_decay, name=f"quant_{layer.name}")
        y = wrapper(x)
        inner.set_weights(layer.get_weights())
        if wrapper.state_quantizer is not None:
            self.quantizer_of[id(y)] = wrapper.state_quantizer
        return y

    def quantize_input(self, x):
        return self.add_quantizer(x, f"{input_name(x)}_quant")

    def __call__(self, call: LayerCall, args: tuple, kwargs: dict):
        layer, keep = call.layer, self.keeps_range(call)
        if isinstance(layer, L.SeparableConv2D):
            dw, pw = _split_separable(layer)
            np_ = keras.ops.convert_to_numpy
            mid = self.wrap(dw, args[0], per_channel=True, keep=True,
                            weights=[np_(layer.depthwise_kernel)])
            pw_weights = [np_(layer.pointwise_kernel)] + ([np_(layer.bias)] if layer.use_bias else [])
            return self.wrap(pw, mid, per_channel=True, keep=keep, weights=pw_weights)
        if isinstance(layer, _WEIGHTED):
            per_channel = not isinstance(layer, L.Dense) or self.config.per_channel_dense
            return self.wrap(layer, args[0], per_channel=per_channel, keep=keep,
                             weights=layer.get_weights())
        if isinstance(layer, RECURRENT_LAYERS):
            return self.wrap_recurrent(layer, args[0])
        new = self.clones.get(id(layer))
        if new is None:
            new = self.clones[id(layer)] = layer.__class__.from_config(layer.get_config())
        y = new(*args, **kwargs)
        source = self.quantizer_of.get(id(keras.tree.flatten(args)[0]))
        if isinstance(layer, _SAME_SCALE) or _activation_kind(layer) in ("linear", "softmax"):
            if source is not None and _activation_kind(layer) != "softmax":
                self.quantizer_of[id(y)] = source
            return y
        if isinstance(layer, _SHARED_RANGE) and source is not None:
            z = source(y, update=False)
            self.quantizer_of[id(z)] = source
            return z
        if _activation_kind(layer) in FIXED_RANGES:
            return self.fixed(y, _activation_kind(layer), f"{layer.name}_quant")
        return self.add_quantizer(y, f"{layer.name}_quant") if keep else y


def quantize_model(model: keras.Model, config: QATConfig | None = None) -> keras.Model:
    """Return a copy of `model` that trains under simulated TFLite int8 inference.

    Fine-tune the result with ``fit`` (a few epochs at a lower learning rate
    than float training), then convert it directly:
    ``tinycompress.convert(qat_model, calibration_samples)``; the int8 scales in
    the flatbuffer are the trained ranges (the samples are only read by the
    converter's checks). BatchNormalization is folded first, with its moving
    statistics at the time of the call.

    Args:
        model: a Functional or Sequential Keras model using only
            `SUPPORTED_LAYERS`.
        config: a `QATConfig`. Default None: ``QATConfig()``.

    Returns:
        A new Functional model (the input model is unchanged) with
        `QuantizeWrapper` and `ActivationQuantizer` layers (a Dense/Conv with a
        softmax activation becomes wrapper, quantizer, Softmax layer); it
        saves and reloads as ``.keras`` with its ranges.

    Raises:
        UnsupportedLayerError: listing every layer that cannot be simulated,
            before anything is built; or the model is subclassed or has no
            defined input.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
        ...                       keras.layers.Dense(2), keras.layers.Softmax()])
        >>> q = quantize_model(m)
        >>> [type(l).__name__ for l in q.layers]  # doctest: +NORMALIZE_WHITESPACE
        ['InputLayer', 'ActivationQuantizer', 'QuantizeWrapper', 'ActivationQuantizer',
         'QuantizeWrapper', 'ActivationQuantizer', 'Softmax']
    """
    config = config or QATConfig()
    problems = _problems(LayerGraph(model))
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UnsupportedLayerError(
            f"quantize_model cannot simulate int8 inference of {len(problems)} layer(s) "
            f"of '{model.name}':\n{lines}\nReplace them with supported layers "
            "(tinycompress.quantization.SUPPORTED_LAYERS) before training."
        )
    graph = LayerGraph(fold_batchnorm(model))
    builder = _Builder(graph, config)
    return graph.rebuild(builder, input_fn=builder.quantize_input, name=f"{model.name}_qat")


def strip_qat(model: keras.Model) -> keras.Model:
    """Remove quantization simulation: the float model with the trained weights.

    Not an export step: use it to keep training in float or to inspect
    weights. To deploy, convert the QAT model itself, or
    `tinycompress.core.prepare_for_export(model)` (which keeps the trained
    ranges); stripping drops them and the converter would calibrate anew.

    Args:
        model: a model returned by `quantize_model` (possibly trained/reloaded).

    Returns:
        A Functional model of plain Keras layers (SeparableConv2D stays split
        into DepthwiseConv2D + Conv2D, BatchNormalization stays folded).

    Raises:
        UnsupportedLayerError: the model is subclassed or has no defined input.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
        >>> [type(l).__name__ for l in strip_qat(quantize_model(m)).layers]
        ['InputLayer', 'Dense']
    """
    def unwrap(layer: keras.layers.Layer) -> Replacement | list | None:
        if isinstance(layer, (ActivationQuantizer, FixedRangeQuantizer)):
            return []
        if isinstance(layer, (QuantizeWrapper, QuantizeRecurrent)):
            inner = layer.layer
            return Replacement((inner.__class__.from_config(inner.get_config()),), (inner.get_weights(),))
        return None

    name = model.name[:-4] if model.name.endswith("_qat") else model.name
    return rewrite(model, unwrap, name=name)


def quantization_ranges(model: keras.Model) -> dict[str, tuple[float, float]]:
    """Trained activation ranges of a QAT model, by quantizer name.

    Args:
        model: a model returned by `quantize_model`.

    Returns:
        ``{quantizer name: (min, max)}``; the int8 scale of the matching
        tensor in the converted model is ``(max - min) / 255``.

    Example:
        >>> import keras
        >>> q = quantize_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
        >>> sorted(quantization_ranges(q).values())
        [(-6.0, 6.0), (-6.0, 6.0)]
    """
    return {q.name: q.range for q in activation_quantizers(model)}
