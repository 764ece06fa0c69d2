"""Work the Rasa server did on every turn that it need not do (issue 15, item 6).

Found with ``python -m bench.profile`` (py-spy on the Rasa server under load); each
change keeps Rasa's behaviour and only removes repeated work:

* ``RemoteAction._validate_action_result`` called ``jsonschema.validate`` on every
  action server answer, which checks the (constant) schema itself against its
  metaschema before checking the answer: about a sixth of the server's CPU. The
  validator is now built once; the answer is still checked against the same schema and
  fails with the same error and message.
* ``Event.resolve_by_type`` is answered from a table (see ``_memoise_event_types``).
* Conversations are read from a cache that the database validates
  (``opsbot._tracker.CachingSQLTrackerStore``, the tracker store opsbot configures).
* The sentence-transformer loads on the first message (a few seconds, which that
  person waited); :func:`warm_up` parses one probe when the server starts, so that cost
  is paid before the first message.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["install", "warm_up"]

logger = logging.getLogger(__name__)
_installed = False


def install() -> None:
    """Patch Rasa once per process (idempotent)."""
    global _installed
    if _installed:
        return
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        error: ValidationError | None = best_match(validator.iter_errors(result))
        if error is not None:
            error.message += (
                ". Failed to validate Action server response from API, make sure your "
                "response from the Action endpoint is valid. For more information about "
                f"the format visit {DOCS_BASE_URL}/custom-actions")
            raise error
        return True

    RemoteAction._validate_action_result = _validate_action_result
    _memoise_event_types()
    _installed = True


def _memoise_event_types() -> None:
    """``Event.resolve_by_type`` walked every subclass of Event for each event it decoded
    (a tenth of the CPU, reading trackers). Same answer, from a table; a name it does not
    know yet (a subclass defined later) asks the original again."""
    from rasa.shared.core.events import Event

    original = Event.resolve_by_type
    known: dict[str, Any] = {}

    def resolve_by_type(type_name: str, default: Any = None) -> Any:
        found = known.get(type_name)
        if found is not None:
            return found
        resolved = original(type_name, default)
        if resolved is not None and resolved is not default:
            known[type_name] = resolved
        return resolved

    Event.resolve_by_type = staticmethod(resolve_by_type)


async def warm_up(agent: Any) -> None:
    """Load the sentence-transformers of ``agent``'s featurizers in a worker thread (the
    event loop goes on serving meanwhile: leases are renewed, health checks answered),
    then parse one probe, so the first person's message does not wait for either."""
    import asyncio

    def load_encoders() -> None:
        runner = getattr(getattr(agent, "processor", None), "graph_runner", None)
        for node in (getattr(runner, "_instantiated_nodes", None) or {}).values():
            encoder = getattr(getattr(node, "_component", None), "encoder", None)
            if encoder is not None and hasattr(encoder, "parse_model"):
                encoder.parse_model  # noqa: B018 - loads it once per process

    try:
        await asyncio.to_thread(load_encoders)
        await agent.parse_message("hello")
    except Exception:  # noqa: BLE001 - the first message will load it instead
        logger.debug("warming up the model failed", exc_info=True)
    from opsbot._memory import trim

    await asyncio.to_thread(trim)  # what loading the model freed goes back to the system
