"""Real models shared by the tests: built once per session, kept tiny.

Each factory returns ``(keras_model, calibration)``; `converted` caches the
full-integer TFLite bytes of each model.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


def _cnn():
    import keras

    return keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv_a"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(12, 3, activation="relu", name="conv_b"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ], name="cnn"), (12, 12, 1)


def _residual():
    import keras

    x_in = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(x_in)
    y = keras.layers.Conv2D(8, 3, padding="same", name="branch")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(x_in, out, name="residual"), (10, 10, 3)


def _dwsep():
    import keras

    return keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6"),
        keras.layers.Conv2D(16, 1, activation="relu6"),
        keras.layers.SeparableConv2D(16, 3, padding="same", activation="relu"),
        keras.layers.AveragePooling2D(2),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5, activation="softmax"),
    ], name="dwsep"), (16, 16, 3)


def _mlp():
    import keras

    return keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dense(3, activation="softmax"),
    ], name="mlp"), (20,)


def _conv1d():
    import keras

    return keras.Sequential([
        keras.Input((50, 6)),
        keras.layers.Conv1D(8, 5, activation="relu"),
        keras.layers.MaxPooling1D(2),
        keras.layers.Conv1D(16, 3, activation="relu"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(4, activation="softmax"),
    ], name="conv1d"), (50, 6)


FACTORIES = {"cnn": _cnn, "residual": _residual, "dwsep": _dwsep, "mlp": _mlp, "conv1d": _conv1d}


def calibration_for(shape, n: int = 100, seed: int = 0) -> np.ndarray:
    """Seeded float samples in [0, 1) shaped for a model input."""
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


@pytest.fixture(scope="session")
def keras_models():
    """name -> (model, calibration samples); weights seeded."""
    import keras

    cache = {}

    def get(name: str):
        if name not in cache:
            keras.utils.set_random_seed(0)
            model, shape = FACTORIES[name]()
            cache[name] = (model, calibration_for(shape))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def converted(keras_models):
    """name -> full-integer int8 TFLite bytes of that model."""
    from tinycompress import convert

    cache = {}

    def get(name: str) -> bytes:
        if name not in cache:
            model, x = keras_models(name)
            cache[name] = convert(model, x)
        return cache[name]

    return get


# --- PostgreSQL (an Optuna storage several search workers share) ---------------------------

POSTGRES_URL_VAR = "TINYCOMPRESS_TEST_POSTGRES_URL"


def _postgres_bindir():
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian's layout) or ``pg_ctl`` on PATH."""
    import glob
    import shutil
    from pathlib import Path

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _unavailable(reason: str):
    """Fail in CI (a capability's real test never skips there), skip elsewhere."""
    message = (f"{reason}; set {POSTGRES_URL_VAR}=postgresql+psycopg2://user@host/db or install "
               "the Debian package postgresql (.ci/run does both)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url():
    """URL of an empty PostgreSQL database for Optuna storages.

    The URL names its driver (``postgresql+psycopg2://...``): SQLAlchemy 2.1
    reads a bare ``postgresql://`` as psycopg 3, which the test extra lacks.

    ``$TINYCOMPRESS_TEST_POSTGRES_URL`` when set (``.ci/run`` starts a server and
    sets it); otherwise a throwaway server on 127.0.0.1 in a temporary folder,
    run as the ``postgres`` user when the tests run as root (PostgreSQL refuses
    root), stopped and deleted after the session.
    """
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None:
        _unavailable("the PostgreSQL driver psycopg2 is not installed (the test extra has it)")
    if os.environ.get(POSTGRES_URL_VAR):
        yield os.environ[POSTGRES_URL_VAR]
        return
    bindir = _postgres_bindir()
    if bindir is None:
        _unavailable("no PostgreSQL server binaries (pg_ctl) on this machine")
    yield from _throwaway_postgres(bindir)


def _throwaway_postgres(bindir):
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    as_user = []
    folder = tempfile.mkdtemp(prefix="tinycompress-pg-")
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run the server")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(folder, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd):
        done = subprocess.run([*as_user, str(bindir / cmd[0]), *cmd[1:]],
                              capture_output=True, text=True, timeout=120)
        if done.returncode:
            _unavailable(f"{cmd[0]} failed: {(done.stderr or done.stdout)[-1500:]}")

    try:
        run("initdb", "-D", data, "-U", "tinycompress", "-A", "trust", "-E", "UTF8", "--no-sync")
        run("pg_ctl", "-D", data, "-l", os.path.join(folder, "server.log"), "-w", "-o",
            f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=50", "start")
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "tinycompress", "tinycompress")
        yield f"postgresql+psycopg2://tinycompress@127.0.0.1:{port}/tinycompress"
    finally:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
