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
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

# Canonical values (DESIGN.md, "Intents and entities"). Training-data synonyms cover
# the common words; these catch what the synonym mapper cannot (case, punctuation).
ENVIRONMENTS = {
    "prod": "prod", "production": "prod", "prd": "prod", "live": "prod",
    "staging": "staging", "stage": "staging", "stg": "staging",
    "preprod": "staging", "pre-prod": "staging",
    "dev": "dev", "development": "dev",
}
LOG_LEVELS = {
    "error": "error", "errors": "error", "exception": "error", "exceptions": "error",
    "err": "error", "errs": "error", "failures": "error",
    "warning": "warning", "warnings": "warning", "warn": "warning", "warns": "warning",
    "info": "info", "infos": "info", "informational": "info",
    "debug": "debug", "debugging": "debug",
    "fatal": "fatal", "fatals": "fatal", "crash": "fatal", "crashes": "fatal",
    "panic": "fatal", "panics": "fatal",
}
PRIORITIES = {
    "highest": "highest", "critical": "highest", "blocker": "highest", "blockers": "highest",
    "p0": "highest", "urgent": "highest",
    "high": "high", "p1": "high", "important": "high",
    "medium": "medium", "normal": "medium", "p2": "medium",
    "low": "low", "minor": "low", "p3": "low",
    "lowest": "lowest", "trivial": "lowest", "p4": "lowest",
}
_CANONICAL = {"environment": ENVIRONMENTS, "log_level": LOG_LEVELS, "priority": PRIORITIES}
# Regex-shaped entities: when a learned extractor and the regex disagree, the regex wins.
_REGEX_FIRST = {"issue_key", "version", "build_number"}


def normalise_value(entity: str, value: Any) -> Any:
    """The canonical value of an entity as opsbot's actions expect it."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if entity == "issue_key":
        return text.upper()
    if entity == "build_number":
        return text.lstrip("#")
    if entity == "project":
        return text.upper()
    table = _CANONICAL.get(entity)
    if table is not None:
        key = re.sub(r"\s+(env|environment)$", "", text.lower()).strip(" .,!?")
        return table.get(key, key)
    return text


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
            entities = message.get(ENTITIES) or []
            message.set(ENTITIES, self.clean(entities), add_to_output=True)
        return messages

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
