"""opsbot's custom Rasa graph components, named in config.yml as ``nlu.<Class>``."""

from nlu.classifier import LinearIntentClassifier
from nlu.embedding_featurizer import SentenceEmbeddingFeaturizer
from nlu.entities import EntityNormalizer

__all__ = ["EntityNormalizer", "LinearIntentClassifier", "SentenceEmbeddingFeaturizer"]
