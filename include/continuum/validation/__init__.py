"""The validation gate: a batch must meet its domain's data contract before anything learns from it.

The contract in a domain spec (`data.columns`, `data.expectations`) becomes a Great
Expectations suite (`suite`), a landed file becomes a frame (`reading`), the suite runs
on that frame (`checks`), and `gating.gate` does the S3 side: validated data or quarantine.
GX, pandas and pyarrow are imported inside the functions, so importing this package
stays cheap for DAG files.
"""

from continuum.validation.checks import (
    FailedExpectation,
    ValidationResult,
    align_to_contract,
    concat_batches,
    conform,
    validate,
)
from continuum.validation.gating import gate
from continuum.validation.reading import UnreadableBatch, read_batch
from continuum.validation.suite import SuiteError, build_suite

__all__ = [
    "FailedExpectation",
    "SuiteError",
    "UnreadableBatch",
    "ValidationResult",
    "align_to_contract",
    "build_suite",
    "concat_batches",
    "conform",
    "gate",
    "read_batch",
    "validate",
]
