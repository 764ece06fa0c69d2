"""opsbot's Prometheus metrics (prometheus-client), one registry per process.

The Rasa server's ``GET /metrics`` (behind the API token, see ``opsbot._rasa_server``)
shows its own metrics, the operations counted in the store, and the action server's
(fetched from the action server's ``/metrics``, which answers only the Rasa server):

Rasa server
  ``opsbot_messages_total{channel,intent}``      messages handled, by the intent NLU read
  ``opsbot_turn_seconds{channel}``               end-to-end turn latency (histogram)
  ``opsbot_nlu_confidence``                      the top intent's confidence (histogram)
  ``opsbot_fallbacks_total{channel,intent}``     nlu_fallback or out_of_scope turns
  ``opsbot_delivery_retries_total{channel}``     sends to a chat tried again (429, 5xx)
  ``opsbot_lease_owner_changes_total{lease}``    a duty taken over from another process
  ``opsbot_operations{intent,state}``            operations in the store (every replica's)
  ``opsbot_wishes_uncovered``                    wishes nothing covers yet (the store's)
  ``process_*``                                  the Rasa server process (CPU, memory)

Action server
  ``opsbot_backend_calls_total{backend,outcome}``  calls to Jenkins, Jira, the log store
  ``opsbot_backend_call_seconds{backend}``         their latency (histogram)
  ``opsbot_confirmations_refused_total{reason}``   confirmations that ran nothing, and why
  ``opsbot_wishes_total{channel}``                 requests opsbot could not serve (wishes)
  ``opsbot_actions_process_*``                     the action server process

Counters are per process: they start at 0 when it starts (Prometheus' ``rate()`` handles
that); ``opsbot_operations`` and ``opsbot_wishes_uncovered`` are read from the store at
each scrape, so they are the same whichever replica answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["ACTIONS", "RASA", "backend_call", "confirmation_refused", "delivery_retry",
           "in_action_server", "lease_changed", "merge", "render", "turn", "wish"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# -- the Rasa server's --------------------------------------------------------------------

RASA = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=RASA)

MESSAGES = Counter("opsbot_messages", "Messages handled, by channel and the intent NLU read",
                   ["channel", "intent"], registry=RASA)
TURN_SECONDS = Histogram(
    "opsbot_turn_seconds", "End-to-end turn latency: message in to every reply out",
    ["channel"], registry=RASA,
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0))
NLU_CONFIDENCE = Histogram(
    "opsbot_nlu_confidence", "Confidence of the top intent of each message", registry=RASA,
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0))
FALLBACKS = Counter(
    "opsbot_fallbacks", "Messages opsbot could not place: below the NLU threshold "
    "(nlu_fallback) or out of scope", ["channel", "intent"], registry=RASA)
DELIVERY_RETRIES = Counter(
    "opsbot_delivery_retries", "Sends to a chat that were tried again (429, 5xx, no connection)",
    ["channel"], registry=RASA)
_LEASE_HELP = "A duty's lease taken over from another (dead or slow) process"
LEASE_CHANGES = Counter("opsbot_lease_owner_changes", _LEASE_HELP, ["lease"], registry=RASA)

# -- the action server's ------------------------------------------------------------------

ACTIONS = CollectorRegistry(auto_describe=True)
ProcessCollector(namespace="opsbot_actions", registry=ACTIONS)

BACKEND_CALLS = Counter("opsbot_backend_calls", "Calls to a backend, by outcome",
                        ["backend", "outcome"], registry=ACTIONS)
BACKEND_SECONDS = Histogram(
    "opsbot_backend_call_seconds", "Latency of backend calls", ["backend"], registry=ACTIONS,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0))
REFUSED = Counter("opsbot_confirmations_refused", "Confirmations that ran nothing, by reason",
                  ["reason"], registry=ACTIONS)
WISHES = Counter("opsbot_wishes", "Requests opsbot could not serve (wishes), by channel",
                 ["channel"], registry=ACTIONS)
ACTIONS_LEASE_CHANGES = Counter("opsbot_lease_owner_changes", _LEASE_HELP, ["lease"],
                                registry=ACTIONS)
FALLBACK_INTENTS = frozenset({"nlu_fallback", "out_of_scope"})
_in_action_server = False


def in_action_server() -> None:
    """This process is the action server: its lease changes go to its registry."""
    global _in_action_server
    _in_action_server = True


def turn(channel: str, intent: str | None, confidence: float | None, seconds: float) -> None:
    """One message handled by the Rasa server."""
    channel = channel or "unknown"
    MESSAGES.labels(channel, intent or "none").inc()
    TURN_SECONDS.labels(channel).observe(max(seconds, 0.0))
    if confidence is not None:
        NLU_CONFIDENCE.observe(min(max(confidence, 0.0), 1.0))
    if intent in FALLBACK_INTENTS:
        FALLBACKS.labels(channel, intent).inc()


def delivery_retry(channel: str) -> None:
    DELIVERY_RETRIES.labels(channel).inc()


def lease_changed(lease: str) -> None:
    (ACTIONS_LEASE_CHANGES if _in_action_server else LEASE_CHANGES).labels(lease).inc()


def wish(channel: str) -> None:
    """A request opsbot answered with "I can't do that" (``actions.wishes``)."""
    WISHES.labels(channel or "unknown").inc()


def confirmation_refused(reason: str) -> None:
    """``reason``: a short word (expired, not_requester, changed, used, policy, ...)."""
    REFUSED.labels(reason).inc()


@contextmanager
def backend_call(backend: str) -> Iterator[None]:
    """Count and time one backend call; an exception is its outcome (then re-raised)."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except Exception as exc:
        outcome = _outcome(exc)
        raise
    finally:
        BACKEND_CALLS.labels(backend, outcome).inc()
        BACKEND_SECONDS.labels(backend).observe(time.perf_counter() - started)


def _outcome(exc: BaseException) -> str:
    """A word for how a call failed, from the exception's class and its ancestors'."""
    names = " ".join(c.__name__ for c in type(exc).__mro__)
    for needle, word in (("OutcomeUnknown", "timeout"), ("Timeout", "timeout"),
                         ("TimedOut", "timeout"), ("NotFound", "not_found"),
                         ("AuthError", "auth"), ("Unauthorized", "auth"),
                         ("InvalidRequest", "refused"), ("Unavailable", "unreachable"),
                         ("ConnectionError", "unreachable")):
        if needle in names:
            return word
    return "error"


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def merge(texts: list[str]) -> bytes:
    """Several processes' Prometheus texts as one: a metric both have (a lease counter)
    is one family with the samples of both, as the text format requires."""
    families: dict[str, Metric] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name in families:
                families[family.name].samples.extend(family.samples)
            else:
                families[family.name] = family
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))
    return generate_latest(registry)
