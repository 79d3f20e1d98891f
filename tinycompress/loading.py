"""Load models from memory or disk, refusing saved code unless asked to run it.

Keras' ``safe_mode`` has been bypassed several times and legacy `.h5` loading
ignores it, so before anything is deserialized the saved configuration is read
as plain JSON (at most `MAX_CONFIG_BYTES`) and walked: ``Lambda`` and
``TFSMLayer`` layers, serialized Python functions, classes from modules outside
the packages in `ALLOWED_MODULES` and registered names of other packages are
refused unless the caller passes ``allow_unsafe=True``. SavedModel directories
are refused the same way: loading one runs its TensorFlow graph functions,
which can read and write files, so no configuration check can make it safe.
Every failure of the loaders (Keras, h5py, JSON) is a `LoadError` that names
the file.

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

__all__ = ["ALLOWED_MODULES", "MAX_CONFIG_BYTES", "LoadedModel", "load_model", "check_config_safe"]

#: Packages whose classes may be deserialized without ``allow_unsafe``: the
#: package itself or its submodules (``keras.layers``), never a longer name
#: (``kerasevil``).
ALLOWED_MODULES = ("keras", "tinycompress")

#: Largest model configuration (`.keras` ``config.json``, `.h5` ``model_config``) read.
MAX_CONFIG_BYTES = 16 * 2**20

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


def _allowed_package(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in ALLOWED_MODULES)


def _foreign(module, registered, cls: str) -> str | None:
    """Why a class reference leaves the allowlist, or None."""
    if isinstance(module, str):
        if not _allowed_package(module):
            return f"class from module '{module}' is outside the allowlist"
    elif module is not None:
        return f"module {module!r} is not a module name"
    if isinstance(registered, str) and registered != cls:
        package = registered.partition(">")[0] if ">" in registered else ""
        if not _allowed_package(package):
            return (f"registered name '{registered}' is from package '{package}', outside "
                    "the allowlist")
    elif registered is not None and not isinstance(registered, str):
        return f"registered_name {registered!r} is not a name"
    return None


def _walk(node, path: str, found: list[str], allowed_names: set[str]) -> None:
    if isinstance(node, dict):
        cls = node.get("class_name")
        if isinstance(cls, str):
            name = (node.get("config") or {}).get("name") if isinstance(node.get("config"), dict) else None
            where = f"{path}/{cls}" + (f"('{name}')" if name else "")
            registered = node.get("registered_name")
            why = _foreign(node.get("module"), registered, cls)
            if cls in _UNSAFE_CLASSES and cls not in allowed_names:
                found.append(f"{where}: {cls} runs saved Python code")
            elif why and cls not in allowed_names and registered not in allowed_names:
                found.append(f"{where}: {why}")
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


def _too_large(path: Path, what: str) -> LoadError:
    return LoadError(
        f"{str(path)!r}: its {what} has more than {MAX_CONFIG_BYTES} bytes; a model "
        "configuration is a few hundred kilobytes. The file is damaged or hostile "
        "(tinycompress.loading.MAX_CONFIG_BYTES sets the limit)."
    )


def _parse_config(raw, path: Path, what: str) -> dict:
    if len(raw) > MAX_CONFIG_BYTES:
        raise _too_large(path, what)
    try:
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, RecursionError) as e:
        raise LoadError(f"{str(path)!r}: its {what} is not valid JSON ({e}); save the model "
                        "again with model.save(...).") from e
    if not isinstance(config, dict):
        raise LoadError(f"{str(path)!r}: its {what} is a JSON {type(config).__name__}, not a "
                        "model configuration; save the model again with model.save(...).")
    return config


def _keras_config(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as z:
            if z.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                raise _too_large(path, "config.json")
            with z.open("config.json") as f:
                raw = f.read(MAX_CONFIG_BYTES + 1)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, NotImplementedError,
            RuntimeError, ValueError) as e:
        raise LoadError(
            f"{str(path)!r} is not a valid .keras archive ({e}); save it with model.save(...)."
        ) from e
    return _parse_config(raw, path, "config.json")


def _h5_config(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except Exception as e:  # h5py raises OSError, KeyError, TypeError... for damaged files
        raise LoadError(f"{str(path)!r} is not a readable HDF5 file ({type(e).__name__}: {e}).") from e
    if raw is None:
        raise LoadError(
            f"{str(path)!r} holds weights only (no model_config); save the whole model "
            "with model.save(...)."
        )
    if not isinstance(raw, (bytes, str)):
        raise LoadError(f"{str(path)!r}: its model_config attribute is {type(raw).__name__}, "
                        "not JSON text; save the model again with model.save(...).")
    return _parse_config(raw, path, "model_config")


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

    try:
        obj = tf.saved_model.load(str(path))
    except Exception as e:  # TensorFlow raises many types for damaged SavedModels
        raise LoadError(f"TensorFlow could not load the SavedModel {str(path)!r} "
                        f"({type(e).__name__}: {str(e)[:500]}); export it again.") from e
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
            `ALLOWED_MODULES`, and load SavedModel directories. Default False.
        allowed_classes: class names to accept without ``allow_unsafe``
            (e.g. your own registered layers). Default none.
        custom_objects: passed to the Keras loader. Default None.

    Returns:
        A `LoadedModel`.

    Raises:
        LoadError: the path does not exist or is not a model, or its loader
            failed (the message names the file and the cause).
        UnsafeModelError: the saved config would run code, or the path is a
            SavedModel directory, and ``allow_unsafe`` is False.
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
    objects = dict(custom_objects or {})
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise LoadError(f"directory {str(path)!r} is not a SavedModel (no saved_model.pb).")
        if not allow_unsafe:
            raise UnsafeModelError(
                f"refusing to load the SavedModel {str(path)!r}: loading a SavedModel runs its "
                "TensorFlow graph, whose ops can read and write files and call out of the "
                "process, and there is no configuration to check first. Load it only if you "
                "trust its author: pass allow_unsafe=True (CLI: --allow-unsafe); or save the "
                "Keras model as .keras."
            )
        return _from_saved_model(path)
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise LoadError(
            f"unknown model file type {suffix!r} for {str(path)!r}; expected .keras, .h5 "
            "or a SavedModel directory."
        )
    config = _keras_config(path) if suffix == ".keras" else _h5_config(path)
    if not allow_unsafe:
        check_config_safe(config, allowed=[*allowed_classes, *objects])
    if suffix != ".keras":
        objects = {**_keras2_compat_objects(), **objects}
    return _from_keras(_keras_load(path, objects, allow_unsafe))


def _keras_load(path: Path, objects: dict, allow_unsafe: bool):
    import keras

    try:
        if path.suffix.lower() == ".keras":
            return keras.saving.load_model(path, safe_mode=not allow_unsafe, custom_objects=objects)
        return keras.saving.load_model(path, custom_objects=objects, compile=False,
                                       safe_mode=not allow_unsafe)
    except Exception as e:  # Keras, h5py and json raise many types for damaged files
        raise LoadError(
            f"Keras could not load {str(path)!r} ({type(e).__name__}: {str(e)[:500]}). If it "
            "was saved with custom layers, pass them in custom_objects; if it was saved by "
            "tf_keras, load it there and save it again as .keras; otherwise the file is damaged."
        ) from e
