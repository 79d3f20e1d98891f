"""Load models from memory or disk, refusing saved code unless asked to run it.

Keras' ``safe_mode`` has been bypassed several times and legacy `.h5` loading
ignores it, so before anything is deserialized the saved configuration is read
as plain JSON and walked: ``Lambda`` and ``TFSMLayer`` layers, serialized Python
functions, and classes from modules outside `ALLOWED_MODULES` are refused unless
the caller passes ``allow_unsafe=True``.

Supported sources: a Keras 3 model, a legacy ``tf_keras`` model (TFMOT wrappers
included), a `.keras` file, a legacy `.h5` file (Keras-2 configs that Keras 3
cannot read as-is, such as ``DepthwiseConv2D`` with ``groups``, are adapted), and
a SavedModel directory.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinycompress.errors import LoadError, UnsafeModelError

__all__ = ["ALLOWED_MODULES", "LoadedModel", "load_model", "check_config_safe"]

#: Module prefixes whose classes may be deserialized without ``allow_unsafe``.
ALLOWED_MODULES = ("keras", "tinycompress")

_UNSAFE_CLASSES = {"Lambda", "TFSMLayer", "__lambda__", "__python_function__"}


@dataclass
class LoadedModel:
    """A model ready for conversion, whatever it was loaded from.

    Attributes:
        call: maps a list of float arrays (one per input) to the outputs.
        input_shapes: input shapes including the batch axis (None = any).
        source: ``"keras"``, ``"tf_keras"`` or ``"saved_model"``.
        model: the underlying Keras model or SavedModel object.
    """

    call: Callable[[Sequence[Any]], Any]
    input_shapes: list[tuple[int | None, ...]]
    source: str
    model: Any

    def predict(self, x) -> list[np.ndarray]:
        """Float outputs for a batch (array, or list of arrays per input)."""
        xs = x if isinstance(x, (list, tuple)) else [x]
        out = self.call([np.asarray(a, np.float32) for a in xs])
        if isinstance(out, dict):
            out = list(out.values())
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(o) for o in outs]


def _walk(node, path: str, found: list[str], allowed_names: set[str]) -> None:
    if isinstance(node, dict):
        cls = node.get("class_name")
        if isinstance(cls, str):
            name = (node.get("config") or {}).get("name") if isinstance(node.get("config"), dict) else None
            where = f"{path}/{cls}" + (f"('{name}')" if name else "")
            module = node.get("module")
            registered = node.get("registered_name")
            if cls in _UNSAFE_CLASSES and cls not in allowed_names:
                found.append(f"{where}: {cls} runs saved Python code")
            elif isinstance(module, str) and not module.startswith(ALLOWED_MODULES) and (
                cls not in allowed_names and (registered or cls) not in allowed_names
            ):
                found.append(f"{where}: class from module '{module}' is outside the allowlist")
        for k, v in node.items():
            _walk(v, f"{path}/{k}" if k not in ("config", "layers") else path, found, allowed_names)
    elif isinstance(node, list):
        for v in node:
            _walk(v, path, found, allowed_names)


def check_config_safe(config: dict, *, allowed: Sequence[str] = ()) -> None:
    """Refuse a saved model configuration that would run arbitrary code.

    Args:
        config: the model config as saved (`.keras` ``config.json`` or the
            ``model_config`` attribute of a `.h5` file), as parsed JSON.
        allowed: class names the caller vouches for. Default none.

    Raises:
        UnsafeModelError: listing each offending layer and why.

    Example:
        >>> check_config_safe({"class_name": "Dense", "module": "keras.layers", "config": {}})
        >>> check_config_safe({"class_name": "Lambda", "config": {"name": "f"}})
        Traceback (most recent call last):
        ...
        tinycompress.errors.UnsafeModelError: ...
    """
    found: list[str] = []
    _walk(config, "", found, set(allowed))
    if found:
        lines = "\n".join(f"  - {f}" for f in found)
        raise UnsafeModelError(
            "refusing to load a model that would run saved code:\n"
            f"{lines}\nLoad it only if you trust its author: pass allow_unsafe=True "
            "(CLI: --allow-unsafe)."
        )


def _keras_config(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise LoadError(
            f"{str(path)!r} is not a valid .keras archive ({e}); save it with model.save(...)."
        ) from e


def _h5_config(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as e:
        raise LoadError(f"{str(path)!r} is not a readable HDF5 file ({e}).") from e
    if raw is None:
        raise LoadError(
            f"{str(path)!r} holds weights only (no model_config); save the whole model "
            "with model.save(...)."
        )
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _keras2_compat_objects() -> dict:
    import keras

    class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
        """Keras-2 `.h5` configs carry ``groups``, which Keras 3 rejects."""

        @classmethod
        def from_config(cls, config):
            config = {k: v for k, v in config.items() if k != "groups"}
            return keras.layers.DepthwiseConv2D.from_config(config)

    return {"DepthwiseConv2D": DepthwiseConv2D}


def _from_keras(model) -> LoadedModel:
    shapes = [tuple(t.shape) for t in model.inputs]
    return LoadedModel(
        call=lambda xs: model(xs if len(xs) > 1 else xs[0], training=False),
        input_shapes=shapes,
        source="tf_keras" if type(model).__module__.startswith("tf_keras") else "keras",
        model=model,
    )


def _from_saved_model(path: Path) -> LoadedModel:
    import tensorflow as tf

    obj = tf.saved_model.load(str(path))
    sigs = getattr(obj, "signatures", {})
    if "serving_default" not in sigs:
        raise LoadError(
            f"SavedModel {str(path)!r} has no 'serving_default' signature; export it "
            "with model.export(...) or tf.saved_model.save(..., signatures=...)."
        )
    fn = sigs["serving_default"]
    specs = fn.structured_input_signature[1]
    names = sorted(specs)
    shapes = [tuple(specs[n].shape.as_list()) for n in names]

    def call(xs):
        return fn(**{n: tf.convert_to_tensor(x, tf.float32) for n, x in zip(names, xs)})

    return LoadedModel(call=call, input_shapes=shapes, source="saved_model", model=obj)


def load_model(
    source,
    *,
    allow_unsafe: bool = False,
    allowed_classes: Sequence[str] = (),
    custom_objects: dict | None = None,
) -> LoadedModel:
    """Load a model for conversion, checking saved configs before deserializing.

    Args:
        source: a Keras 3 or tf_keras model, or a path to a `.keras` file, a
            `.h5` file or a SavedModel directory.
        allow_unsafe: deserialize Lambda/TFSMLayer layers and classes outside
            `ALLOWED_MODULES`. Default False.
        allowed_classes: class names to accept without ``allow_unsafe``
            (e.g. your own registered layers). Default none.
        custom_objects: passed to the Keras loader. Default None.

    Returns:
        A `LoadedModel`.

    Raises:
        LoadError: the path does not exist or is not a model.
        UnsafeModelError: the saved config would run code.
    """
    if hasattr(source, "inputs") and callable(source):
        return _from_keras(source)
    if not isinstance(source, (str, Path)):
        raise LoadError(
            f"expected a Keras model or a path to a .keras/.h5 file or SavedModel "
            f"directory. Received {type(source).__name__}."
        )
    path = Path(source)
    if not path.exists():
        raise LoadError(f"model path {str(path)!r} does not exist.")
    import keras

    objects = dict(custom_objects or {})
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise LoadError(f"directory {str(path)!r} is not a SavedModel (no saved_model.pb).")
        return _from_saved_model(path)
    suffix = path.suffix.lower()
    if suffix == ".keras":
        config = _keras_config(path)
        if not allow_unsafe:
            check_config_safe(config, allowed=[*allowed_classes, *objects])
        model = keras.saving.load_model(path, safe_mode=not allow_unsafe, custom_objects=objects)
    elif suffix in (".h5", ".hdf5"):
        config = _h5_config(path)
        if not allow_unsafe:
            check_config_safe(config, allowed=[*allowed_classes, *objects])
        objects = {**_keras2_compat_objects(), **objects}
        try:
            model = keras.saving.load_model(path, custom_objects=objects, compile=False)
        except Exception as e:  # Keras raises many types for config mismatches
            raise LoadError(
                f"Keras 3 could not load {str(path)!r}: {e}. If it was saved by tf_keras "
                "with custom layers, pass them in custom_objects."
            ) from e
    else:
        raise LoadError(
            f"unknown model file type {suffix!r} for {str(path)!r}; expected .keras, .h5 "
            "or a SavedModel directory."
        )
    return _from_keras(model)
