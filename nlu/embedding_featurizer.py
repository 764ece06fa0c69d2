"""A Rasa graph component that adds sentence-transformer embeddings as dense features."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu._encoder import Encoder, default_cache_dir

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False
)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds a sentence-transformer embedding of the text as a dense sentence feature.

    Config (config.yml):
      model: a local model directory, or unset for the packaged all-MiniLM-L6-v2
      cache_dir: where the embedding cache lives (default $OPSBOT_CACHE_DIR or
        ./.opsbot/cache); ``false`` turns the cache off
      batch_size: texts per forward pass while training
      dtype: auto (bfloat16 where the CPU supports it natively), float32 or bfloat16
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            "model": None,
            "cache_dir": None,
            "batch_size": 64,
            "dtype": "auto",
            "show_progress": True,
        }

    @staticmethod
    def required_packages() -> list[str]:
        # What the packaged model needs (nlu/_bert.py). Rasa checks these by importing
        # them: sentence_transformers would bring in transformers, about 120 MB, for a
        # model of another kind only (it loads it when it needs it).
        return ["torch", "tokenizers", "safetensors"]

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        batch = config.get("batch_size", 64)
        if not isinstance(batch, int) or batch < 1:
            raise InvalidConfigException(
                "SentenceEmbeddingFeaturizer: batch_size must be a positive integer, "
                f"got {batch!r}."
            )
        if config.get("dtype", "auto") not in ("auto", "float32", "bfloat16"):
            raise InvalidConfigException(
                "SentenceEmbeddingFeaturizer: dtype must be auto, float32 or bfloat16."
            )
        model = config.get("model")
        if model is not None and not isinstance(model, str):
            raise InvalidConfigException(
                "SentenceEmbeddingFeaturizer: model must be a directory or model name."
            )

    def __init__(self, config: dict[str, Any], execution_context: ExecutionContext) -> None:
        full = {**self.get_default_config(), **config}
        super().__init__(execution_context.node_name, full)
        cache_setting = full["cache_dir"]
        cache_dir: Path | None
        if cache_setting is False:
            cache_dir = None
        elif cache_setting:
            cache_dir = Path(str(cache_setting)).expanduser()
        else:
            cache_dir = default_cache_dir()
        self.encoder = Encoder(
            full["model"], cache_dir, full["batch_size"], bool(full["show_progress"]),
            str(full["dtype"]),
        )

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentenceEmbeddingFeaturizer:
        return cls(config, execution_context)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Embed every training text in one batched pass, through the disk cache."""
        messages = [m for m in training_data.training_examples if m.get(TEXT)]
        vectors, new = self.encoder.embed_many([m.get(TEXT) for m in messages])
        logger.info(
            "Sentence embeddings: %d texts, %d newly embedded.", len(messages), new
        )
        for message, vector in zip(messages, vectors, strict=True):
            self._add(message, vector)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if text:
                self._add(message, self.encoder.embed_one(text))
        return messages

    def _add(self, message: Message, vector: np.ndarray) -> None:
        self.add_features_to_message(
            sequence=None, sentence=vector.reshape(1, -1), attribute=TEXT, message=message
        )
