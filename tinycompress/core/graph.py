"""The one graph walker: layer calls of a Functional/Sequential model in execution order.

This module and `tinycompress.core.rewrite` are the only places that read
private Keras structure (``_nodes_by_depth``, ``_keras_history``,
``_outputs_struct``, ``Node.arguments``); each use is pinned by
``tests/tinycompress/core/test_core_keras_private.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from tinycompress.errors import UnsupportedLayerError

__all__ = ["LayerCall", "LayerGraph", "input_name"]


@dataclass(frozen=True)
class LayerCall:
    """One call of a layer inside the model graph.

    Attributes:
        layer: the layer (or nested model) called.
        node: the Keras node of the call.
        inputs: the input tensors (flattened).
        outputs: the output tensors (flattened).
    """

    layer: keras.layers.Layer
    node: Any
    inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]


def _as_functional(model: keras.Model) -> keras.Model:
    if isinstance(model, keras.Sequential):
        try:
            inputs, outputs = model.inputs, model.outputs
        except (AttributeError, ValueError) as e:
            raise UnsupportedLayerError(
                f"Sequential model '{model.name}' has no defined input; expected a model "
                "built from keras.Input(...). Add keras.Input(shape) as its first layer."
            ) from e
        return keras.Model(inputs, outputs, name=model.name)
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth") or not getattr(
            model, "inputs", None):
        raise UnsupportedLayerError(
            f"expected a Functional or Sequential Keras model. Received "
            f"{type(model).__name__} '{getattr(model, 'name', '?')}' (subclassed models "
            "have no layer graph); rebuild it with the Functional API."
        )
    return model


def input_name(tensor) -> str:
    """Name of the `InputLayer` that produced a model input tensor."""
    return tensor._keras_history.operation.name  # noqa: SLF001


class LayerGraph:
    """Layer calls of a model in execution order, with tensor producers and consumers.

    Args:
        model: a Functional or Sequential Keras model (built with `keras.Input`).
            A nested model is one call (walk it with its own `LayerGraph`).

    Raises:
        UnsupportedLayerError: the model is subclassed or has no defined input.

    Example:
        >>> inp = keras.Input((4,), name="x")
        >>> shared = keras.layers.Dense(4, name="shared")
        >>> m = keras.Model(inp, keras.layers.Add()([shared(inp), shared(shared(inp))]))
        >>> g = LayerGraph(m)
        >>> [c.layer.name for c in g.calls][:3], len(g.calls_of[id(shared)])
        (['shared', 'shared', 'shared'], 3)
    """

    def __init__(self, model: keras.Model) -> None:
        self.source = model
        self.model = _as_functional(model)
        self.calls: list[LayerCall] = []
        self.consumers: dict[int, list[LayerCall]] = {}
        self.producers: dict[int, LayerCall] = {}
        self.calls_of: dict[int, list[LayerCall]] = {}
        by_depth = self.model._nodes_by_depth  # noqa: SLF001  (Keras keeps no public node list)
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                if node.operation is None or node.is_input:
                    continue
                call = LayerCall(node.operation, node, tuple(node.input_tensors), tuple(node.outputs))
                self.calls.append(call)
                self.calls_of.setdefault(id(call.layer), []).append(call)
                for t in call.inputs:
                    self.consumers.setdefault(id(t), []).append(call)
                for t in call.outputs:
                    self.producers[id(t)] = call
        self.output_ids = {id(t) for t in self.model.outputs}
        self.input_ids = {id(t) for t in self.model.inputs}

    def sole_consumer(self, tensor) -> LayerCall | None:
        """The only call reading `tensor`, or None (several, none, or a model output)."""
        users = self.consumers.get(id(tensor), [])
        if len(users) != 1 or id(tensor) in self.output_ids:
            return None
        return users[0]

    def rebuild(
        self,
        call_fn: Callable[[LayerCall, tuple, dict], Any],
        *,
        input_fn: Callable[[Any], Any] | None = None,
        name: str | None = None,
    ) -> keras.Model:
        """Make a new Functional model by calling `call_fn` for every layer call.

        Args:
            call_fn: ``(call, args, kwargs) -> outputs`` where args/kwargs are the
                original call arguments with tensors replaced by new ones.
            input_fn: maps each new input tensor to the tensor the graph should
                use. Default None: the input itself.
            name: name of the new model. Default None: the source model's name.

        Returns:
            The new model (same input names and output structure).
        """
        tensors: dict[int, Any] = {}
        new_inputs = []
        for t in self.model.inputs:
            x = keras.Input(batch_shape=t.shape, dtype=t.dtype, name=input_name(t))
            new_inputs.append(x)
            tensors[id(t)] = input_fn(x) if input_fn is not None else x
        for call in self.calls:
            args, kwargs = call.node.arguments.fill_in(tensors)
            out = call_fn(call, args, kwargs)
            for old, new in zip(call.outputs, keras.tree.flatten(out)):
                tensors[id(old)] = new
        outputs = keras.tree.map_structure(
            lambda t: tensors[id(t)], self.model._outputs_struct  # noqa: SLF001
        )
        inputs = new_inputs if len(new_inputs) > 1 else new_inputs[0]
        return keras.Model(inputs, outputs, name=name or self.model.name)
