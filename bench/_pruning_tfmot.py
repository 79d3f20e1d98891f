"""TFMOT `prune_low_magnitude` fine-tuning of LeNet-5, in its own process.

Importing TFMOT switches ``tf.keras`` to tf_keras for the whole process, so
`bench/pruning.py` runs this file with ``python``. It loads the float weights,
prunes with TFMOT's PolynomialDecay, strips, converts to int8 with
`tinycompress.convert`, writes the ``.tflite`` and prints one JSON line with the
fit time (seconds) and the final kernel sparsity.

Usage: python bench/_pruning_tfmot.py WEIGHTS.npz EPOCHS BATCH LR INITIAL FINAL END FREQ OUT.tflite
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str]) -> int:
    weights, epochs, batch, lr, initial, final, end, freq, out = argv
    import numpy as np
    import tensorflow_model_optimization as tfmot  # sets TF_USE_LEGACY_KERAS=1
    import tf_keras as K

    from _data import load_mnist
    from tinycompress import convert

    K.utils.set_random_seed(0)
    (x_train, y_train), _ = load_mnist()
    model = K.Sequential([
        K.layers.InputLayer((28, 28, 1)),
        K.layers.Conv2D(20, 5), K.layers.MaxPooling2D(2),
        K.layers.Conv2D(50, 5), K.layers.MaxPooling2D(2),
        K.layers.Flatten(), K.layers.Dense(500, activation="relu"), K.layers.Dense(10),
    ])
    with np.load(weights) as w:
        model.set_weights([w[f"w{i}"] for i in range(len(w.files))])
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        float(initial), float(final), begin_step=0, end_step=int(end), frequency=int(freq))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(optimizer=K.optimizers.Adam(float(lr)),
                   loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=["accuracy"])
    start = time.perf_counter()
    pruned.fit(x_train, y_train, epochs=int(epochs), batch_size=int(batch), verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    seconds = time.perf_counter() - start
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    kernels = [l.kernel.numpy() for l in stripped.layers if hasattr(l, "kernel")]
    sparsity = float(sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels))
    with open(out, "wb") as f:
        f.write(convert(stripped, x_train[:500]))
    print(json.dumps({"fit_seconds": seconds, "sparsity": sparsity}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
