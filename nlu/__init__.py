"""opsbot's custom Rasa graph components, named in config.yml as ``nlu.<Class>``."""

from nlu.classifier import LinearIntentClassifier
from nlu.crf import InScopeCRFEntityExtractor
from nlu.embedding_featurizer import SentenceEmbeddingFeaturizer
from nlu.entities import EntityNormalizer
from nlu.near_misses import NearMissGenerator
from nlu.vocabulary import Vocabulary

__all__ = ["EntityNormalizer", "InScopeCRFEntityExtractor", "LinearIntentClassifier",
           "NearMissGenerator", "SentenceEmbeddingFeaturizer", "Vocabulary"]
