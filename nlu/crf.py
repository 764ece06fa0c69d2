"""Rasa's CRF entity extractor, trained on the in-scope examples only.

Why: out-of-scope examples are not annotated ("scale payments to 6 pods" marks neither
payments nor 6), and many are made by rule at training time (nlu/near_misses.py). Trained
on them, the CRF learns that a service name or a number in such a sentence is no entity,
and extracts fewer of them in real requests ("billing build 1203 must be halted" lost
its build number). Out of scope is the classifier's to learn, not the extractor's.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.extractors.crf_entity_extractor import CRFEntityExtractor
from rasa.shared.nlu.constants import INTENT
from rasa.shared.nlu.training_data.training_data import TrainingData

__all__ = ["InScopeCRFEntityExtractor"]


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True
)
class InScopeCRFEntityExtractor(CRFEntityExtractor):
    """``CRFEntityExtractor`` that leaves out the examples of ``out_of_scope_intent``."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**CRFEntityExtractor.get_default_config(), "out_of_scope_intent": "out_of_scope"}

    def train(self, training_data: TrainingData) -> Resource:
        oos = self.component_config.get("out_of_scope_intent", "out_of_scope")
        kept = [m for m in training_data.training_examples if m.get(INTENT) != oos]
        return super().train(TrainingData(
            training_examples=kept, entity_synonyms=training_data.entity_synonyms,
            regex_features=training_data.regex_features,
            lookup_tables=training_data.lookup_tables))
