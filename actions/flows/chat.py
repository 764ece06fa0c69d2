"""The conversation's own intents: hello, goodbye, thanks, help.

They are answered by the dialogue (responses in ``domain.yml``; ``action_help`` in
``actions.ops``), not by a handler; they are declared so that "did you mean" buttons and
teaching can offer them, with their titles and the words that name them.
"""

from __future__ import annotations

from actions.registry import IntentKind

__all__ = ["INTENTS"]


INTENTS = (
    IntentKind("greet", None, "say hello", aliases=("hello", "hi")),
    IntentKind("goodbye", None, "say goodbye", aliases=("bye",)),
    IntentKind("thank", None, "say thanks", aliases=("thanks",)),
    IntentKind("help", None, "what opsbot can do"),
)
