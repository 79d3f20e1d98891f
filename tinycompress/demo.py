"""The end-to-end demo: train, compress, export, verify on TFLM, report.

Uses scikit-learn's bundled 8x8 digits (1,797 images, no download), trains a
small CNN for a few epochs on two CPU cores, and exports it with
`tinycompress.export` (int8 TFLM model, C sources, firmware project, report).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinycompress.datasets import load_digits
from tinycompress.export import ExportResult, export
from tinycompress.write import check_out_dir
from tflite_export.progress import Progress, report

__all__ = ["DemoSummary", "build_demo_model", "run_demo"]


@dataclass(frozen=True)
class DemoSummary:
    """Figures of one demo run.

    Attributes:
        export: the `ExportResult`.
        float_acc: float Keras accuracy on the held-out digits.
        int8_acc: TFLM int8 accuracy on the same digits.
        float_bytes: bytes of the float32 weights (4 per parameter).
        test_samples: number of held-out digits.
    """

    export: ExportResult
    float_acc: float
    int8_acc: float
    float_bytes: int
    test_samples: int


def build_demo_model():
    """A small CNN for 8x8 digits (about 6k parameters)."""
    import keras

    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="digits_cnn",
    )


def run_demo(
    out_dir: str | Path,
    *,
    epochs: int = 8,
    target: str | None = "cortex-m",
    overwrite: bool = False,
    seed: int = 0,
    verbose: int | str = "auto",
    progress: Progress | None = None,
) -> DemoSummary:
    """Train the demo CNN, export it for TFLM and measure it.

    Args:
        out_dir: export directory to create.
        epochs: training epochs. Default 8.
        target: firmware project to write, or None. Default "cortex-m".
        overwrite: replace an existing ``out_dir``. Default False.
        seed: seed for data split, weights and training. Default 0.
        verbose: Keras's training output (``model.fit``): ``"auto"`` or 1 a
            progress bar, 2 one line per epoch, 0 nothing. Default "auto".
        progress: a `tflite_export.Progress` callback, announced each step
            and passed on to `export`. Default None.

    Returns:
        A `DemoSummary`.

    Raises:
        ExportError: ``out_dir`` exists and ``overwrite`` is False (checked
            before training).
    """
    check_out_dir(out_dir, overwrite=overwrite)
    import keras

    from tflite_export import evaluate_accuracy


    def step(message: str) -> None:
        report(progress, message, 0, 0)

    keras.utils.set_random_seed(seed)
    x_train, y_train, x_test, y_test = load_digits(seed)
    model = build_demo_model()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    step(f"training the digits CNN for {epochs} epochs")
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=verbose)
    float_acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
    result = export(
        model, x_train[:300], out_dir, name="digits", target=target, overwrite=overwrite,
        progress=progress,
    )
    step("measuring TFLM int8 accuracy")
    int8_acc = evaluate_accuracy(result.model, x_test, y_test)
    return DemoSummary(result, float_acc, int8_acc, 4 * model.count_params(), len(x_test))
