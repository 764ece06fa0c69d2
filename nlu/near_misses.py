"""Out-of-scope training examples made by rule from the in-scope ones: near misses.

Why: a classifier trained only on what opsbot can do, plus small talk as "out of
scope", maps "scale checkout to 4 replicas" or "restart the coffee machine" onto the
nearest operation with high confidence: nothing it was trained on looks like a request
for an operation it does not have. The near misses teach that boundary:

- the verbs of opsbot's own requests on things it does not act on ("restart the coffee
  machine", "deploy the kubernetes node", "roll back my dentist appointment");
- verbs opsbot has no operation for on the things it does act on: on its names
  ("scale checkout", "drain prod", "merge payments-ci"; annotated as entities, so that
  the entity extractor still learns them as names) and on its nouns ("delete all the
  logs", "disable every alert").

Everything is derived from the training data at training time, so a team-defined
operation gets its boundary from its examples alone: its verbs are paired with foreign
objects, and a word any in-scope example uses is never used as a foreign verb or object
(a team operation "rotate the TLS certificate of checkout" removes "rotate" and "TLS
certificate" from the lists). The lists below are the only hand-written part.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    INTENT,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

__all__ = ["FOREIGN_OBJECTS", "FOREIGN_VERBS", "NearMissGenerator", "near_misses"]

# Things opsbot acts on none of: everyday objects, and infrastructure it has no
# operation for. Each is a noun phrase that reads after a verb.
FOREIGN_OBJECTS = (
    "my laptop", "the office printer", "my phone", "the wifi router", "my hair appointment",
    "the team lunch", "my vacation request", "the dishwasher", "the meeting room booking",
    "my calendar", "the birthday card", "my car", "the garden", "the thermostat",
    "my headphones", "the pizza order", "my gym membership", "the kitchen lights",
    "my password manager", "the holiday party", "my expense report", "the spreadsheet",
    "my playlist", "the presentation slides", "my flight", "the worker nodes",
    "the kubernetes cluster", "the kafka brokers", "the redis cache", "the mysql replica",
    "the elasticsearch index", "the dns record", "the tls certificate", "the load balancer",
    "the firewall rules", "the vpn", "the s3 bucket", "the on-call schedule",
    "the alert silence", "the cron schedule", "the docker image cache", "the vm snapshot",
    "the helm chart", "the ssh keys", "the api gateway quota", "the replica count",
    "the git branch protection", "the sso settings", "the ldap group", "the backup tapes",
    "the datacenter generator", "the rabbitmq queue", "the secrets vault",
)

# Verbs opsbot has no operation for, for the things it does act on: the verbs of system
# administration, of data (create, read, update, delete on whole collections), of source
# control, and of everyday life. A verb any in-scope example uses is dropped.
FOREIGN_VERBS = (
    "scale", "drain", "cordon", "wipe", "format", "truncate", "merge", "rebase",
    "cherry-pick", "fork", "archive", "encrypt", "decrypt", "snapshot", "resize",
    "provision", "decommission", "migrate", "rename", "clone", "grant access to",
    "revoke access to", "rotate the secrets of", "renew the certificate of", "silence",
    "page the owner of", "invoice", "email", "print", "translate", "delete", "erase",
    "destroy", "uninstall", "install", "reinstall", "enable", "disable", "configure",
    "reconfigure", "reset", "shut down", "power off", "reboot", "reformat", "back up",
    "restore a backup of", "vacuum", "reindex", "shard", "throttle", "rate limit",
    "autoscale", "replicate", "failover", "patch", "harden", "audit", "benchmark",
    "load test", "port-forward to", "ssh into", "exec into", "tag", "approve", "publish",
    "paint", "feed", "water", "cook", "celebrate", "buy", "sell", "rate",
    "review the budget of", "write a poem about", "order lunch for", "book a meeting about",
)

# Words that open a request but are not its verb.
_OPENERS = {
    "please", "pls", "can", "could", "would", "will", "you", "u", "kindly", "hey", "hi",
    "ok", "okay", "so", "now", "just", "go", "and", "then", "opsbot", "bot", "i", "we",
    "need", "want", "wanna", "to", "let's", "lets", "let", "us", "me", "quickly", "pretty",
}
_NOT_VERBS = {
    "what", "what's", "whats", "which", "who", "whose", "whom", "how", "when", "why",
    "where", "is", "are", "was", "were", "did", "does", "do", "has", "have", "any", "the",
    "a", "an", "my", "our", "your", "this", "that", "there", "it", "yes", "yeah", "no",
    "nope", "thanks", "thank", "thx", "cheers", "hello", "bye", "goodbye", "good", "great",
    "sure", "not", "don't", "dont", "never", "all", "latest", "last", "recent",
    "errors", "logs", "status", "in", "on", "for", "from", "with", "by", "of", "at", "if",
    "new", "know", "notifications", "anything", "yo", "hey",
}
# The entity types that name what opsbot acts on (the objects of its verbs).
# Not issue keys or projects: a request about an issue carries free text ("post to PAY-4:
# escalated"), and odd verbs beside a key are no sign of a request out of scope.
OBJECT_ENTITIES = ("service", "job", "environment")
# Words that say nothing of what a phrase is about.
_FUNCTION = {"the", "a", "an", "of", "to", "for", "on", "in", "into", "about", "from", "with",
             "at", "by", "up", "down", "off", "out", "over", "and", "or", "it", "is", "was",
             "same", "previous", "next", "one", "last", "first", "new", "old", "running"}
_PARTICLES = {"back", "out", "up", "down", "off", "over"}
_TEMPLATES = (
    "{verb} {object}", "please {verb} {object}", "can you {verb} {object}",
    "{verb} {object} now", "could you {verb} {object} for me", "i need you to {verb} {object}",
)
# How a request names a whole collection of what opsbot acts on ("all the logs").
_COLLECTIONS = ("the {noun}", "all the {noun}", "every {noun}", "our {noun}")
_DETERMINERS = {"the", "all", "every", "my", "our", "its", "their", "any", "latest", "last"}
_WORD = re.compile(r"[a-z][a-z'-]*")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ops_verbs(examples: Iterable[str], minimum: int = 3) -> list[str]:
    """The verbs opsbot's requests open with ("roll back", "deploy", "restart"), each
    opening at least ``minimum`` examples, most frequent first."""
    counts: Counter[str] = Counter()
    for text in examples:
        words = text.lower().split()
        while words and words[0].strip(",!?") in _OPENERS:
            words.pop(0)
        if not words:
            continue
        verb = words[0].strip(",.!?")
        if verb in _NOT_VERBS or not re.fullmatch(r"[a-z]+", verb):
            continue
        if len(words) > 1 and words[1].strip(",.!?") in _PARTICLES:
            verb = f"{verb} {words[1].strip(',.!?')}"
        counts[verb] += 1
    return [verb for verb, n in counts.most_common() if n >= minimum]


def ops_nouns(examples: Iterable[str], skip: Iterable[str] = (), minimum: int = 3) -> list[str]:
    """The nouns opsbot's requests act on ("logs", "build", "ticket"): the words that
    follow a determiner in at least ``minimum`` examples, except the ``skip`` words (names,
    which the annotated entities cover)."""
    skipped = set(skip)
    counts: Counter[str] = Counter()
    for text in examples:
        words = _words(text)
        for before, word in zip(words, words[1:], strict=False):
            if before in _DETERMINERS and word not in _DETERMINERS | _FUNCTION | skipped:
                counts[word] += 1
    return [noun for noun, n in counts.most_common() if n >= minimum]


def near_misses(
    in_scope: Sequence[Message], objects_of: Iterable[str] = OBJECT_ENTITIES,
    per_verb: int = 5, per_foreign_verb: int = 4, seed: int = 7,
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Near-miss texts with their entity annotations, made from the in-scope examples
    (``INTENT`` and ``TEXT`` set; entities as Rasa annotates them); ``objects_of``: the
    entity types that name what opsbot acts on."""
    rng = random.Random(seed)
    texts = [m.get(TEXT) or "" for m in in_scope]
    used = {w for text in texts for w in _words(text)}
    significant = lambda phrase: [w for w in _words(phrase) if len(w) > 3]  # noqa: E731
    objects = [o for o in FOREIGN_OBJECTS if not any(w in used for w in significant(o))]
    foreign = [v for v in FOREIGN_VERBS
               if not any(w in used for w in _words(v) if w not in _FUNCTION)]
    made: dict[str, list[dict[str, Any]]] = {}
    for verb in ops_verbs(texts):
        for obj in rng.sample(objects, min(per_verb, len(objects))):
            made.setdefault(rng.choice(_TEMPLATES).format(verb=verb, object=obj), [])
    names = _annotated_names(in_scope, set(objects_of))
    nouns = ops_nouns(texts, skip=(w for _, value in names for w in _words(value)))
    for verb in foreign:
        for noun in rng.sample(nouns, min(per_foreign_verb, len(nouns))):
            obj = rng.choice(_COLLECTIONS).format(noun=noun)
            made.setdefault(rng.choice(_TEMPLATES).format(verb=verb, object=obj), [])
        for entity, value in rng.sample(names, min(per_foreign_verb, len(names))):
            template = rng.choice(_TEMPLATES)
            text = template.format(verb=verb, object=value)
            start = template.index("{object}")
            start += len(verb) - len("{verb}") if template.index("{verb}") < start else 0
            made.setdefault(text, [{
                ENTITY_ATTRIBUTE_START: start, ENTITY_ATTRIBUTE_END: start + len(value),
                ENTITY_ATTRIBUTE_VALUE: value, ENTITY_ATTRIBUTE_TYPE: entity,
            }])
    known = {t.lower() for t in texts}
    return [(text, entities) for text, entities in made.items() if text.lower() not in known]


def _annotated_names(messages: Sequence[Message], types: set[str]) -> list[tuple[str, str]]:
    """(entity type, literal text) of the names of ``types`` annotated in the examples,
    each once."""
    found: dict[tuple[str, str], None] = {}
    for message in messages:
        text = message.get(TEXT) or ""
        for entity in message.get(ENTITIES) or []:
            literal = text[entity[ENTITY_ATTRIBUTE_START]:entity[ENTITY_ATTRIBUTE_END]]
            if entity[ENTITY_ATTRIBUTE_TYPE] in types and literal and " " not in literal:
                found[(entity[ENTITY_ATTRIBUTE_TYPE], literal)] = None
    return sorted(found)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False
)
class NearMissGenerator(GraphComponent):
    """Adds rule-made near misses to the out-of-scope intent before anything trains.

    Config (config.yml; first in the pipeline, so every component sees the examples):
      out_of_scope_intent: the intent they are added to (it must be in the domain)
      object_entities: the entity types that name what opsbot acts on
      per_verb: foreign objects paired with each of opsbot's own verbs
      per_foreign_verb: names paired with each foreign verb
    Parsing is untouched: ``process`` passes messages through.
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"out_of_scope_intent": "out_of_scope", "object_entities": list(OBJECT_ENTITIES),
                "per_verb": 5, "per_foreign_verb": 4, "random_seed": 7}

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext,
    ) -> NearMissGenerator:
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        oos = self.config["out_of_scope_intent"]
        in_scope = [m for m in training_data.intent_examples
                    if m.get(INTENT) and m.get(INTENT) != oos and m.get(TEXT)]
        if not in_scope or oos not in training_data.intents:
            return training_data  # nothing to draw a boundary around, or nowhere to put it
        made = near_misses(in_scope, self.config["object_entities"], self.config["per_verb"],
                           self.config["per_foreign_verb"], self.config["random_seed"])
        extra = [Message(data={TEXT: text, INTENT: oos, **({ENTITIES: e} if e else {})})
                 for text, e in made]
        return training_data.merge(TrainingData(training_examples=extra))

    def process(self, messages: list[Message]) -> list[Message]:
        return messages
