"""`QATConfig`: the settings of quantization-aware training, as a value object."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tinycompress.errors import QuantizationError

__all__ = ["QATConfig"]


@dataclass(frozen=True)
class QATConfig:
    """How `quantize_model` simulates TFLite's int8 scheme.

    Args:
        ema_decay: moving-average decay of activation ranges, in [0, 1).
            Default 0.99.
        per_channel_dense: quantize Dense kernels per output channel. Default
            False, matching `tinycompress.convert`'s default; pass the same value
            to ``convert(..., per_channel_dense=...)``.
        freeze_after: training steps after which `QATCallback` freezes the
            activation ranges; None (default) never freezes them.

    Raises:
        QuantizationError: a value is out of range.

    Example:
        >>> c = QATConfig(ema_decay=0.9, freeze_after=500)
        >>> QATConfig.from_config(c.get_config()) == c
        True
    """

    ema_decay: float = 0.99
    per_channel_dense: bool = False
    freeze_after: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ema_decay, (int, float)) or not 0.0 <= self.ema_decay < 1.0:
            raise QuantizationError(
                f"expected ema_decay in [0, 1). Received: ema_decay={self.ema_decay!r}; "
                "use e.g. 0.99."
            )
        if not isinstance(self.per_channel_dense, bool):
            raise QuantizationError(
                "expected per_channel_dense to be True or False. Received: "
                f"per_channel_dense={self.per_channel_dense!r}."
            )

        f = self.freeze_after
        if f is not None and (isinstance(f, bool) or not isinstance(f, int) or f < 1):
            raise QuantizationError(
                "expected freeze_after to be None or a positive integer (training steps). "
                f"Received: freeze_after={f!r}."
            )

    def get_config(self) -> dict[str, Any]:
        """The fields as a flat dictionary."""
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "QATConfig":
        """Rebuild from `get_config`'s dictionary."""
        return cls(**config)
