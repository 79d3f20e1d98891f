"""One walker and one `layers=` selector for every technique."""

import keras
import pytest

from tinycompress.core import LINEAR_KINDS, select_layers, walk_layers
from tinycompress.errors import ClusteringError, CompressionError, PruningError

L = keras.layers


def _model():
    inner = keras.Sequential([keras.Input((4,)), L.Dense(4, name="in_d"), L.ReLU(name="in_relu")],
                             name="inner")
    return keras.Sequential([
        keras.Input((4,)), L.Dense(4, name="d"), inner,
        L.Reshape((4, 1)), L.LSTM(2, name="rnn"), L.Dense(2, name="out")], name="m")


def test_walker_visits_nested_models_and_optionally_wrapped_layers():
    m = _model()
    assert [l.name for l in walk_layers(m)] == ["d", "inner", "in_d", "in_relu"] + [
        l.name for l in m.layers[2:]]
    w = keras.Sequential([keras.Input((3, 4)), L.TimeDistributed(L.Dense(2, name="td_d"), name="td")])
    assert [l.name for l in walk_layers(w)] == ["td"]
    assert [l.name for l in walk_layers(w, into_wrappers=True)] == ["td", "td_d"]


def test_selector_forms_mean_the_same_everywhere():
    m = _model()
    names = lambda sel, **kw: [l.name for l in select_layers(m, sel, **kw)]  # noqa: E731
    assert names(None) == ["d", "in_d", "rnn", "out"]
    assert names(None, kinds=LINEAR_KINDS) == ["d", "in_d", "out"]
    assert names(["out", "in_d"]) == ["in_d", "out"]
    assert names(L.LSTM) == ["rnn"] and names((L.LSTM, L.Dense)) == ["d", "in_d", "rnn", "out"]
    assert names(lambda l: l.name.startswith("in")) == ["in_d"]


def test_selector_errors_use_the_techniques_class():
    m = _model()
    with pytest.raises(PruningError, match="No layer named 'nope'"):
        select_layers(m, ["nope"], error=PruningError)
    with pytest.raises(ClusteringError, match=r"layer 'in_relu' \(ReLU\) cannot be clustered"):
        select_layers(m, "in_relu", verb="clustered", error=ClusteringError)
    with pytest.raises(CompressionError, match="rnn"):
        select_layers(m, "rnn", kinds=LINEAR_KINDS)
    with pytest.raises(CompressionError, match="must be None"):
        select_layers(m, 3)
    with pytest.raises(CompressionError, match="No layer .* can be"):
        select_layers(m, L.Conv2D)
