"""Knowledge distillation for microcontroller students, built on `keras.distillation`.

Keras provides the `Distiller` and the logits/feature losses; this package adds
checked settings (`build_distiller`, `distill`, with a labels-only
``fallback="scratch"`` guard reported by `FallbackReport`), temperature-softened
logits distillation with optional logit standardization
(`LogitsDistillation`, `standardize_logits`), losses that help small
students (`AttentionTransfer`, `RelationalDistillation`, `HintDistillation`
with a projection adapter), teacher-assistant chains
(`distill_with_assistants`), student derivation (`derive_student`) and
`StudentCallback`, which points pruning/QAT callbacks at the student inside a
distiller.

The technique contract (`tinycompress.core.technique`): `DistillationConfig`,
`apply` (needs ``teacher=``), `callbacks`, `TECHNIQUE`;
`tinycompress.core.prepare_for_export(distiller)` returns the prepared student.
"""

from tinycompress.distillation.assistant import (
    TeacherAssistantResult,
    assistant_widths,
    distill_with_assistants,
)
from tinycompress.distillation.attention import AttentionTransfer
from tinycompress.distillation.callbacks import StudentCallback
from tinycompress.distillation.distiller import build_distiller, distill
from tinycompress.distillation.errors import DistillationConfigError
from tinycompress.distillation.fallback import FallbackReport
from tinycompress.distillation.hint import HintDistillation
from tinycompress.distillation.logits import LogitsDistillation, standardize_logits
from tinycompress.distillation.relational import RelationalDistillation
from tinycompress.distillation.student import WIDTH_SCALED_LAYERS, derive_student
from tinycompress.distillation.technique import TECHNIQUE, DistillationConfig, apply, callbacks

__all__ = [
    "DistillationConfig",
    "TECHNIQUE",
    "apply",
    "callbacks",
    "AttentionTransfer",
    "DistillationConfigError",
    "FallbackReport",
    "HintDistillation",
    "LogitsDistillation",
    "RelationalDistillation",
    "StudentCallback",
    "TeacherAssistantResult",
    "WIDTH_SCALED_LAYERS",
    "assistant_widths",
    "build_distiller",
    "derive_student",
    "distill",
    "distill_with_assistants",
    "standardize_logits",
]
