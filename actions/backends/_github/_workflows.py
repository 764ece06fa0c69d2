"""Reading a workflow file's ``workflow_dispatch`` inputs, and checking what a person asked
to run against them before anything is sent.

Why apart: GitHub refuses a bad dispatch with a terse 422 ('Unexpected inputs provided:
["x"]'); opsbot refuses first, in a person's words, naming the inputs and options that
exist. The file's rules are GitHub's
(docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions
#onworkflow_dispatchinputs): types string, choice, boolean, number, environment; a choice
value must be one of its ``options``; a required input without a default must be given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from actions.backends._github._model import Workflow, WorkflowInput, or_list
from actions.errors import InvalidRequest

_BACKEND = "GitHub"
_BOOLEAN = {"true": "true", "yes": "true", "on": "true", "1": "true",
            "false": "false", "no": "false", "off": "false", "0": "false"}


def read_workflow_file(text: str) -> tuple[tuple[str, ...], tuple[WorkflowInput, ...]]:
    """A workflow file's triggers and dispatch inputs; ValueError if it is not a workflow.

    YAML 1.1 reads a bare ``on`` key as True, so both spellings are looked up.
    """
    data: Any = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("not a mapping")
    on = data.get("on", data.get(True))
    if isinstance(on, str):
        on = {on: None}
    elif isinstance(on, list):
        on = {str(name): None for name in on}
    elif not isinstance(on, dict):
        raise ValueError("no 'on' triggers")
    dispatch = on.get("workflow_dispatch") or {}
    raw_inputs = dispatch.get("inputs") if isinstance(dispatch, dict) else None
    inputs = []
    for name, spec in (raw_inputs or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        default = spec.get("default")
        inputs.append(WorkflowInput(
            name=str(name), required=bool(spec.get("required", False)),
            default=None if default is None else _text(default),
            kind=str(spec.get("type", "string")),
            options=tuple(str(o) for o in spec.get("options") or ()),
            description=str(spec.get("description") or "")))
    return tuple(str(t) for t in on), tuple(inputs)


def _text(value: object) -> str:
    """A YAML scalar as the text Actions sees (``true``, not ``True``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_inputs(workflow: Workflow, given: Mapping[str, object]) -> dict[str, str]:
    """The inputs to send, as text, or InvalidRequest naming what is wrong and what exists.

    Refused: a workflow without ``workflow_dispatch``, an input it does not declare, a
    required input without a default left out, a choice outside its options, a boolean
    that is not yes/no, a number that is not one.
    """
    title = f"the {workflow.name} workflow ({workflow.file})"
    if not workflow.dispatchable:
        runs_on = or_list(list(workflow.triggers)) if workflow.triggers else "nothing"
        raise InvalidRequest(f"{title[0].upper()}{title[1:]} cannot be run by hand: it has no "
                             f"workflow_dispatch trigger (it runs on {runs_on}).",
                             backend=_BACKEND)
    declared = {spec.name: spec for spec in workflow.inputs}
    listing = (f"its inputs are {', '.join(s.describe() for s in workflow.inputs)}"
               if workflow.inputs else "it takes no inputs")
    unknown = [name for name in given if name not in declared]
    if unknown:
        names = " and ".join(repr(n) for n in unknown)
        raise InvalidRequest(f"{title[0].upper()}{title[1:]} has no input {names}; {listing}.",
                             backend=_BACKEND)
    values: dict[str, str] = {}
    for spec in workflow.inputs:
        raw = given.get(spec.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if spec.required and spec.default is None:
                raise InvalidRequest(f"To run {title}, say its {spec.describe()}.",
                                     backend=_BACKEND)
            continue
        values[spec.name] = _value(title, spec, raw)
    return values


def _value(title: str, spec: WorkflowInput, raw: object) -> str:
    text = _text(raw).strip()
    if spec.kind == "choice" and spec.options and text not in spec.options:
        raise InvalidRequest(f"{spec.name} of {title} is one of {or_list(spec.options)}; "
                             f"{text!r} is not.", backend=_BACKEND)
    if spec.kind == "boolean":
        if text.lower() not in _BOOLEAN:
            raise InvalidRequest(f"{spec.name} of {title} is true or false; {text!r} is "
                                 "neither.", backend=_BACKEND)
        return _BOOLEAN[text.lower()]
    if spec.kind == "number":
        try:
            float(text)
        except ValueError:
            raise InvalidRequest(f"{spec.name} of {title} is a number; {text!r} is not.",
                                 backend=_BACKEND) from None
    return text
