"""The one layer walker and the one `layers=` selector of every technique."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Union

import keras

from tinycompress.core.kernels import KERNEL_TABLE, PROTOCOL_METHODS, base_layer, is_compressible
from tinycompress.errors import CompressionError

__all__ = ["LayerSelector", "walk_layers", "select_layers", "selector_config"]

#: None (every eligible layer), a layer name or list of names, a layer class or
#: tuple of classes, or a predicate ``f(layer) -> bool``.
LayerSelector = Union[None, str, Sequence[str], type, tuple, Callable[[keras.layers.Layer], bool]]


def walk_layers(model: keras.layers.Layer, *, into_wrappers: bool = False) -> Iterator[keras.layers.Layer]:
    """Every layer of `model` in model order, nested models included (depth first).

    Args:
        model: a Keras model (or layer).
        into_wrappers: also yield the layer inside each `keras.layers.Wrapper`
            (after the wrapper). Default False: a wrapper stands for its layer.

    Yields:
        Layers; nested models are yielded before their own layers.

    Example:
        >>> inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")], name="inner")
        >>> outer = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(1, name="o")])
        >>> [l.name for l in walk_layers(outer)]
        ['inner', 'd', 'o']
    """
    for layer in getattr(model, "layers", []):
        yield layer
        if isinstance(layer, keras.Model):
            yield from walk_layers(layer, into_wrappers=into_wrappers)
        elif into_wrappers and isinstance(layer, keras.layers.Wrapper):
            yield from walk_layers(_Holder(layer.layer), into_wrappers=True)


class _Holder:
    """Lets `walk_layers` recurse into a wrapper's single layer."""

    def __init__(self, layer):
        self.layers = [layer]


def _names(layers) -> list[str] | None:
    if isinstance(layers, str):
        return [layers]
    if isinstance(layers, (list, tuple)) and layers and all(isinstance(n, str) for n in layers):
        return list(layers)
    return None


def _classes(layers) -> tuple[type, ...] | None:
    if isinstance(layers, type):
        return (layers,)
    if isinstance(layers, tuple) and layers and all(isinstance(t, type) for t in layers):
        return layers
    return None


def _refusal(layer, verb: str) -> str:
    return (
        f"layer {layer.name!r} ({type(layer).__name__}) cannot be {verb}: expected one of "
        f"{sorted(c.__name__ for c in KERNEL_TABLE)} or a layer defining "
        f"{PROTOCOL_METHODS[0]}(). Leave it out of `layers=` or add that method."
    )


def select_layers(
    model: keras.Model,
    layers: LayerSelector = None,
    *,
    kinds: tuple[str, ...] | None = None,
    verb: str = "compressed",
    error: type[CompressionError] = CompressionError,
) -> list[keras.layers.Layer]:
    """Resolve a `layers=` selector to the eligible layers of `model`, nested models included.

    The same selector means the same thing for every technique: None picks
    every eligible layer, names must exist (and be eligible), classes match
    a layer or the layer inside its wrapper, a predicate is called on every
    eligible layer. A layer is eligible when it is in the kernel table (rows
    of `kinds`) or defines the compressible-weights protocol.

    Args:
        model: the model.
        layers: the selector. Default None.
        kinds: eligible table kinds. Default None: every row.
        verb: past participle naming the technique in errors ("pruned").
            Default "compressed".
        error: the technique's exception class. Default `CompressionError`.

    Returns:
        The selected layers, in model order, each once.

    Raises:
        CompressionError: (of class `error`) a name is missing or names an
            ineligible layer, the selector has another type, or nothing is selected.

    Example:
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
        ...                       keras.layers.ReLU(), keras.layers.Dense(2, name="b")])
        >>> [l.name for l in select_layers(m)], [l.name for l in select_layers(m, "b")]
        (['a', 'b'], ['b'])
        >>> [l.name for l in select_layers(m, keras.layers.Dense)]
        ['a', 'b']
    """
    walked = list(dict.fromkeys(walk_layers(model)))
    eligible = [l for l in walked if is_compressible(l, kinds)]
    names, classes = _names(layers), _classes(layers)
    if layers is None:
        chosen = eligible
    elif names is not None:
        by_name = {l.name: l for l in walked}
        for n in names:
            if n not in by_name:
                raise error(
                    f"No layer named {n!r} in model {model.name!r}. Received layer name {n!r}; "
                    f"expected one of {sorted(by_name)} (nested models included)."
                )
            if not is_compressible(by_name[n], kinds):
                raise error(_refusal(by_name[n], verb))
        chosen = [l for l in eligible if l.name in names]
    elif classes is not None:
        chosen = [l for l in eligible if isinstance(l, classes) or isinstance(base_layer(l), classes)]
    elif callable(layers):
        chosen = [l for l in eligible if layers(l)]
    else:
        raise error(
            "`layers` must be None, a layer name, a list of names, a layer class (or tuple of "
            f"classes) or a predicate. Received: layers={layers!r}."
        )
    if not chosen:
        raise error(
            f"No layer of model {model.name!r} can be {verb} with layers={layers!r}; eligible "
            f"layers are {[l.name for l in eligible]}."
        )
    return chosen


def selector_config(layers: LayerSelector, error: type[CompressionError] = CompressionError):
    """`layers` in a form `get_config` can store (None, a name, or a list of names).

    Raises:
        CompressionError: (of class `error`) a class or predicate selector:
            only names serialize.

    Example:
        >>> selector_config("a"), selector_config(("a", "b")), selector_config(None)
        ('a', ['a', 'b'], None)
    """
    if layers is None:
        return None
    names = _names(layers)
    if names is None:
        raise error(
            f"only layer names serialize; received layers={layers!r}. Pass layer names "
            "(e.g. [l.name for l in select_layers(model, ...)]) to make this serializable."
        )
    return layers if isinstance(layers, str) else names
