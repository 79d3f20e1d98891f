"""Walk and rebuild the layer graph of a Functional (or Sequential) Keras model.

Private helpers shared by `fold_batchnorm`, `quantize_model` and `strip_qat`:
each layer call becomes a `Call` in execution order, every tensor knows its
consumers, and `rebuild` calls a function per `Call` on fresh inputs to make a
new Functional model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from tinycompress.errors import QuantizationError

__all__ = ["Call", "Graph", "clone_layer"]


@dataclass(frozen=True)
class Call:
    """One call of a layer inside the model graph."""

    layer: keras.layers.Layer
    node: Any
    inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]


def _as_functional(model: keras.Model) -> keras.Model:
    if isinstance(model, keras.Sequential):
        try:
            inputs, outputs = model.inputs, model.outputs
        except (AttributeError, ValueError) as e:
            raise QuantizationError(
                f"Sequential model '{model.name}' has no defined input; expected a model "
                "built from keras.Input(...). Add keras.Input(shape) as its first layer."
            ) from e
        return keras.Model(inputs, outputs, name=model.name)
    if not hasattr(model, "_nodes_by_depth"):
        raise QuantizationError(
            f"expected a Functional or Sequential Keras model. Received "
            f"{type(model).__name__} '{getattr(model, 'name', '?')}' (subclassed models "
            "have no layer graph); rebuild it with the Functional API."
        )
    return model


class Graph:
    """Layer calls of a model in execution order, with tensor consumers.

    Args:
        model: a Functional or Sequential Keras model (built with `keras.Input`).

    Raises:
        QuantizationError: the model is subclassed or has no defined input.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = _as_functional(model)
        self.calls: list[Call] = []
        self.consumers: dict[int, list[Call]] = {}
        self.calls_of: dict[int, list[Call]] = {}
        by_depth = self.model._nodes_by_depth  # noqa: SLF001  (Keras keeps no public node list)
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                if node.operation is None or node.is_input:
                    continue
                call = Call(node.operation, node, tuple(node.input_tensors), tuple(node.outputs))
                self.calls.append(call)
                self.calls_of.setdefault(id(call.layer), []).append(call)
                for t in call.inputs:
                    self.consumers.setdefault(id(t), []).append(call)
        self.output_ids = {id(t) for t in self.model.outputs}
        self.input_ids = {id(t) for t in self.model.inputs}

    def sole_consumer(self, tensor) -> Call | None:
        """The only call reading `tensor`, or None (several, none, or a model output)."""
        users = self.consumers.get(id(tensor), [])
        if len(users) != 1 or id(tensor) in self.output_ids:
            return None
        return users[0]

    def rebuild(
        self,
        call_fn: Callable[[Call, tuple, dict], Any],
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
            layer_name = t._keras_history.operation.name  # noqa: SLF001
            x = keras.Input(batch_shape=t.shape, dtype=t.dtype, name=layer_name)
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


def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fresh, unbuilt copy of `layer` from its config (weights not copied)."""
    return layer.__class__.from_config(layer.get_config())
