"""Team-defined operations: one YAML file each in ``operations/`` (docs/operations.md).

- ``_spec``: finding and reading the files (every problem names file, line and fix).
- ``_runs``: the run section (a command, an HTTP request or a Jenkins job) and its checks.
- ``_checks``: the problems of a file, and the checks every section shares.
- ``_types``: the parameter types and what each accepts.
- ``_runners``: the exact argv or request built from confirmed values, and running it.
- ``_training``: the files' intents, examples and rules as Rasa training data.
- ``flow``: the dialogue (values, questions, preview, execution, completion); importing it
  registers the operations with ``actions.registry``.
"""

from actions.operations._runners import Prepared, prepare
from actions.operations._spec import (
    PATH_VARIABLE,
    Loaded,
    OperationFileError,
    OperationsError,
    OperationSpec,
    builtin_intents,
    load_operations,
    operation_dirs,
    operation_files,
)
from actions.operations._training import write_training_files
from actions.operations._types import TYPES, Parameter

__all__ = [
    "PATH_VARIABLE", "TYPES", "Loaded", "OperationFileError", "OperationSpec", "OperationsError",
    "Parameter", "Prepared", "builtin_intents", "load_operations", "operation_dirs",
    "operation_files", "prepare",
    "write_training_files",
]
