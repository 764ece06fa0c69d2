"""Entity clean-up after extraction: one value per span, canonical values."""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from actions.values import FROM_TEXT, normalise_value

# Regex-shaped entities: when a learned extractor and the regex disagree, the regex wins.
_REGEX_FIRST = {"issue_key", "version", "build_number"}
# "live" is a name of prod, and also the predicate of "what is live on staging" and "went
# live in dev": there, with another environment named, it is not an environment.
_PREDICATE_LIVE = re.compile(r"(?:\b(?:is|are|was|were|be|been|being|went|goes|go|gone|going)"
                             r"|'s|'re)\s+$", re.IGNORECASE)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False
)
class EntityNormalizer(GraphComponent, EntityExtractorMixin):
    """Keeps one entity per span and type, and gives each its canonical value."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EntityNormalizer:
        return cls()

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            entities = [self.from_text(e, text) for e in message.get(ENTITIES) or []]
            message.set(ENTITIES, self.clean(self.without_predicate_live(entities, text)),
                        add_to_output=True)
        return messages

    @staticmethod
    def from_text(entity: dict[str, Any], text: str) -> dict[str, Any]:
        """For the FROM_TEXT types, the words as written, before Rasa's synonym mapper:
        it ignores the entity type ("critical" would become the priority "highest")."""
        start, end = entity.get(ENTITY_ATTRIBUTE_START), entity.get(ENTITY_ATTRIBUTE_END)
        if (entity.get(ENTITY_ATTRIBUTE_TYPE) not in FROM_TEXT or not isinstance(start, int)
                or not isinstance(end, int) or not 0 <= start < end <= len(text)):
            return entity
        return {**entity, ENTITY_ATTRIBUTE_VALUE: text[start:end]}

    @staticmethod
    def without_predicate_live(entities: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
        """Drop an environment that is the word "live" used as a predicate ("payments is
        live on staging") when the message names another environment too."""

        def predicate(entity: dict[str, Any]) -> bool:
            start, end = entity.get(ENTITY_ATTRIBUTE_START), entity.get(ENTITY_ATTRIBUTE_END)
            if entity.get(ENTITY_ATTRIBUTE_TYPE) != "environment" or not isinstance(start, int) \
                    or not isinstance(end, int) or text[start:end].lower() != "live":
                return False
            return bool(_PREDICATE_LIVE.search(text[:start]))

        doubtful = [e for e in entities if predicate(e)]
        others = [e for e in entities if e.get(ENTITY_ATTRIBUTE_TYPE) == "environment"
                  and e not in doubtful]
        return [e for e in entities if e not in doubtful] if doubtful and others else entities

    @staticmethod
    def clean(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop overlapping duplicates (regex first for regex-shaped types), normalise."""

        def rank(entity: dict[str, Any]) -> tuple[int, int]:
            regex = entity.get(EXTRACTOR) == "RegexEntityExtractor"
            preferred = regex == (entity[ENTITY_ATTRIBUTE_TYPE] in _REGEX_FIRST)
            length = entity.get(ENTITY_ATTRIBUTE_END, 0) - entity.get(ENTITY_ATTRIBUTE_START, 0)
            return (0 if preferred else 1, -length)

        kept: list[dict[str, Any]] = []
        for entity in sorted(entities, key=rank):
            start = entity.get(ENTITY_ATTRIBUTE_START, -1)
            end = entity.get(ENTITY_ATTRIBUTE_END, -1)
            overlaps = any(
                other.get(ENTITY_ATTRIBUTE_START, -1) < end
                and start < other.get(ENTITY_ATTRIBUTE_END, -1)
                for other in kept
            )
            if overlaps:
                continue
            entity = dict(entity)
            entity[ENTITY_ATTRIBUTE_VALUE] = normalise_value(
                entity[ENTITY_ATTRIBUTE_TYPE], entity.get(ENTITY_ATTRIBUTE_VALUE)
            )
            kept.append(entity)
        return sorted(kept, key=lambda e: e.get(ENTITY_ATTRIBUTE_START, 0))
