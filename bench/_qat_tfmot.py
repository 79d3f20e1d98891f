"""TFMOT quantization-aware training of a benchmark model, in its own process.

Importing TFMOT switches ``tf.keras`` to tf_keras for the whole process, so
`bench/qat.py` runs this file with ``python`` and reads back the ``.tflite``.

Usage: python bench/_qat_tfmot.py MODEL WIDTH WEIGHTS.npz EPOCHS LR OUT.tflite
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str]) -> int:
    name, width, weights, epochs, lr, out = argv
    import numpy as np
    import tensorflow_model_optimization as tfmot  # sets TF_USE_LEGACY_KERAS=1
    import tf_keras

    from _data import load_mnist
    from _qat_models import build
    from tinycompress import convert

    tf_keras.utils.set_random_seed(0)
    (x_train, y_train), _ = load_mnist()
    model = build(name, tf_keras, int(width))
    with np.load(weights) as w:
        model.set_weights([w[f"w{i}"] for i in range(len(w.files))])
    qat = tfmot.quantization.keras.quantize_model(model)
    qat.compile(optimizer=tf_keras.optimizers.Adam(float(lr)),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(x_train, y_train, epochs=int(epochs), batch_size=64, verbose=0)
    with open(out, "wb") as f:
        f.write(convert(qat, x_train[:500]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
