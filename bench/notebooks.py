"""Notebook benchmark: wall time of every notebook, as CI and as Colab would run it.

Executes each notebook in ``notebooks/`` with papermill and prints one JSON line
per notebook: mode, data set, seconds (kernel start included) and the
notebook's numeric ``results``. ``--dataset digits`` is what CI runs (offline);
``--dataset mnist`` stands in for Colab: the kernel's
``keras.datasets.mnist.load_data`` is pointed at ../shared/data/mnist-t10k
(first 8,000 images as the training split, last 2,000 as the test split),
since MNIST cannot be downloaded here.

Run: python bench/notebooks.py [--mode quick|full] [--dataset digits|mnist] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _data import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
MARK = "__bench_results__"

MNIST_FROM_SHARED = """
import gzip as _gzip, numpy as _np, keras as _keras

def _idx(name, header):
    with _gzip.open({folder!r} + "/" + name, "rb") as f:
        return _np.frombuffer(f.read(), _np.uint8, offset=header)

def _shared_mnist():
    x = _idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y = _idx("t10k-labels-idx1-ubyte.gz", 8)
    return (x[:8000], y[:8000]), (x[8000:], y[8000:])

_keras.datasets.mnist.load_data = _shared_mnist
"""


def _numbers(results: dict) -> dict:
    return {k: v for k, v in results.items() if isinstance(v, (int, float, str)) and not
            (isinstance(v, str) and os.sep in v)}


def run(name: str, mode: str, dataset: str) -> dict:
    import nbformat
    import papermill

    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    if dataset == "mnist":
        folder = os.path.join(DATA_DIR, "mnist-t10k")
        if not os.path.isdir(folder):
            sys.exit(f"MNIST not found in {folder}; run with --dataset digits.")
        nb.cells.insert(1, nbformat.v4.new_code_cell(MNIST_FROM_SHARED.format(folder=folder)))
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import json as _json; print({MARK!r} + _json.dumps(results, default=str))"))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / name
        nbformat.write(nb, source)
        start = time.perf_counter()
        done = papermill.execute_notebook(
            str(source), str(Path(tmp) / f"out-{name}"), cwd=tmp, progress_bar=False,
            parameters={"QUICK": mode == "quick", "DATASET": dataset, "OUT_DIR": f"{tmp}/out"},
        )
        seconds = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in done.cells[-1].outputs)
    results = json.loads(text.split(MARK, 1)[1])
    return {"notebook": name, "mode": mode, "dataset": dataset, "seconds": round(seconds, 1),
            **_numbers(results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook file names (default: all)")
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(ROOT)  # the kernel imports this checkout
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = args.names or sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for name in names:
        print(json.dumps(run(name, args.mode, args.dataset)), flush=True)


if __name__ == "__main__":
    main()
