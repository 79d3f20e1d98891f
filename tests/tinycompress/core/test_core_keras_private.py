"""Pins every private Keras API the model core uses (and only the core uses).

If a Keras upgrade changes one of these, this file fails first and names it;
the fix goes into `tinycompress.core` alone.
"""

import pathlib

import keras
import numpy as np

import tinycompress
from tinycompress.core import LayerGraph, kernels, rewrite

L = keras.layers
PRIVATE = ("_nodes_by_depth", "_keras_history", "_outputs_struct", "arguments.fill_in")


def _residual():
    inp = keras.Input((4,), name="x")
    h = L.Dense(4, name="a")(inp)
    return keras.Model(inp, {"sum": L.Add(name="add")([inp, h]), "h": h})


def test_nodes_by_depth_lists_every_call_with_its_tensors():
    model = _residual()
    by_depth = model._nodes_by_depth
    nodes = [n for depth in sorted(by_depth, reverse=True) for n in by_depth[depth]]
    assert [n.operation.name for n in nodes if not n.is_input] == ["a", "add"]
    add = nodes[-1]
    assert [t.name for t in add.input_tensors] == [t.name for t in (model.inputs[0], nodes[-2].outputs[0])]
    args, kwargs = add.arguments.fill_in({id(t): "new" for t in add.input_tensors})
    assert args == (["new", "new"],) and kwargs == {}


def test_keras_history_and_outputs_struct():
    model = _residual()
    assert model.inputs[0]._keras_history.operation.name == "x"
    assert set(model._outputs_struct) == {"sum", "h"}


def test_rewrite_keeps_input_names_and_output_structure():
    model = _residual()
    new = rewrite(model)
    assert new.inputs[0]._keras_history.operation.name == "x"
    x = np.arange(8, dtype="float32").reshape(2, 4)
    out, ref = new(x), model(x)
    assert set(out) == {"sum", "h"}
    np.testing.assert_allclose(out["sum"], ref["sum"], rtol=1e-6)


def test_kernel_is_the_variable_even_with_lora():
    d = L.Dense(3)
    d.build((None, 4))
    d.enable_lora(2)
    assert not isinstance(d.kernel, keras.Variable)  # a computed tensor under LoRA
    (k,) = kernels(d)
    assert k.variable is d._kernel and isinstance(k.variable, keras.Variable)


def test_private_apis_appear_only_in_the_core():
    root = pathlib.Path(tinycompress.__file__).parent
    for path in root.rglob("*.py"):
        if path.parent.name == "core":
            continue
        text = path.read_text()
        for name in PRIVATE:
            assert name not in text, f"{path} uses the private Keras API {name}"
    assert LayerGraph(_residual()).calls[0].layer.name == "a"
