"""Which words of a message opsbot never learnt: the names it does not know.

Why: "upgrade postgres to 16 on staging" is understood as a deploy, but postgres is no
service, and the entity extractor, which learnt the services by their names, marks
nothing. Without this, opsbot would ask "Which service?" as if none had been named. The
words of the training examples (in scope only), the lookup tables and the synonyms are
what opsbot knows; every other word of a message is reported in ``unseen_words`` so
that the actions can say "there is no service called postgres" instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

__all__ = ["UNSEEN_WORDS_KEY", "Vocabulary", "words_of"]

UNSEEN_WORDS_KEY = "unseen_words"
"""Where a parse result lists the words no training example had, in message order."""

_FILE = "vocabulary.json"
# Words, not numbers, versions or keys: those are values, and have their own extractors.
_WORD = re.compile(r"[^\W\d_](?:[\w'-]*[^\W\d_])?")


def words_of(text: str) -> list[str]:
    """The words of ``text`` that could be names, lower-cased, in order ("deploy",
    "postgres"; not "16", "2.4.1" or "PAY-12")."""
    found = []
    for token in text.split():
        token = token.strip(".,;:!?\"'()[]{}")
        if _WORD.fullmatch(token):
            found.append(token.lower())
    return found


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True
)
class Vocabulary(GraphComponent):
    """Learns the words of the in-scope examples; reports a message's other words.

    Config: ``out_of_scope_intent``, whose examples (small talk, near misses) do not
    count as words opsbot knows.
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"out_of_scope_intent": "out_of_scope"}

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage,
                 resource: Resource, known: frozenset[str] = frozenset()) -> None:
        self.config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self.known = known

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> Vocabulary:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        oos = self.config["out_of_scope_intent"]
        known: set[str] = set()
        for message in training_data.training_examples:
            if message.get(INTENT) != oos:
                known.update(words_of(message.get(TEXT) or ""))
        for table in training_data.lookup_tables:
            for element in table.get("elements") or []:
                known.update(words_of(str(element)))
        for word, value in training_data.entity_synonyms.items():
            known.update(words_of(f"{word} {value}"))
        self.known = frozenset(known)
        with self._storage.write_to(self._resource) as directory:
            (directory / _FILE).write_text(json.dumps(sorted(self.known)), encoding="utf-8")
        return self._resource

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> Vocabulary:
        try:
            with model_storage.read_from(resource) as directory:
                known = frozenset(json.loads((directory / _FILE).read_text(encoding="utf-8")))
        except (ValueError, FileNotFoundError):
            known = frozenset()  # not trained: no word is reported (see ``process``)
        return cls(config, model_storage, resource, known)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            unseen = [w for w in words_of(message.get(TEXT) or "") if w not in self.known]
            message.set(UNSEEN_WORDS_KEY, unseen if self.known else [], add_to_output=True)
        return messages
