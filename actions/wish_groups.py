"""Wishes grouped by what they ask for: the same request in other words is one group.

Groups are average-linkage clusters of the texts' vectors, cut where the mean cosine
distance between two groups reaches the likeness's ``cut``; they are ordered by how
often they were asked, then by how many people asked. Exact repeats always share a
group.

Two likenesses, tried on 63 requests in 20 known groups (renew a certificate, free disk
space, who is on call, purge the dead letter queue, ...; of the 61 pairs that belong
together, how many each put together, and how many pairs it put together wrongly):

- by meaning: the NLU's own sentence encoder (``nlu._encoder``, config.yml's model;
  ``opsbot._wishes_cli.sentence_model``, as ``actions`` imports nothing of ``nlu``): 59
  of 61, none wrong. It finds paraphrases ("how much disk is left on db-1" and "what's
  the free space on db1?" are 0.71 alike). Loading it takes 10 to 20 s and about 1 GB
  (it imports torch, and ``nlu`` imports Rasa): fine for ``opsbot wishes``, which a
  person runs now and then to act on the groups.
- ``NGRAMS``: TF-IDF over character n-grams (scikit-learn), instant and light: 23 of 61,
  none wrong, and no cut finds more without wrong ones. It finds repeats and
  near-repeats only: those two texts are 0.07 alike, while a shared service name makes
  "renew the TLS cert on checkout" and "scale up checkout pods" 0.40 alike. The chat's
  answer uses it: the action server does not carry torch for one question, and a missed
  pair only splits a count, where a wrong one would hide a request.

The model's cut, 0.7, is mid-way in the range of cuts that put no pair together wrongly
(0.6 to 0.75); the n-grams' 0.75 is the highest such cut (at 0.8, one pair is wrong).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from actions.storage.wishes import Wish

__all__ = ["NGRAMS", "Group", "Likeness", "Vectors", "group", "one_line"]

Vectors = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Likeness:
    """How texts are compared: their vectors (one row each), and the cut."""

    name: str
    vectors: Vectors
    # Groups join while their mean cosine distance is below this (0: same, 1: unrelated).
    cut: float


@dataclass(frozen=True)
class Group:
    """Wishes that ask for the same thing, oldest first; ``representative`` says it best."""

    wishes: tuple[Wish, ...]
    representative: str

    @property
    def count(self) -> int:
        return len(self.wishes)

    @property
    def people(self) -> list[str]:
        return sorted({w.requester for w in self.wishes})

    @property
    def first_asked(self) -> datetime:
        return self.wishes[0].asked_at

    @property
    def last_asked(self) -> datetime:
        return self.wishes[-1].asked_at

    @property
    def ids(self) -> list[str]:
        return [w.id for w in self.wishes]

    @property
    def texts(self) -> list[str]:
        """Each way it was asked, once (case and spacing aside), the representative first."""
        seen: dict[str, str] = {}
        for text in (self.representative, *(w.text for w in reversed(self.wishes))):
            seen.setdefault(one_line(text).casefold(), one_line(text))
        return list(seen.values())

    @property
    def examples(self) -> list[str]:
        """Up to three ways it was asked: the representative, then the latest."""
        return self.texts[:3]


def one_line(text: str) -> str:
    """``text`` on one line, its spaces collapsed."""
    return " ".join(text.split())


def group(wishes: Sequence[Wish], likeness: Likeness) -> list[Group]:
    """``wishes`` grouped, most asked first, then by most people, then latest asked."""
    if not wishes:
        return []
    keys = list(dict.fromkeys(one_line(w.text).casefold() for w in wishes))
    # One text is its own group: no model to load for it.
    vectors = _unit_rows(likeness.vectors(keys)) if len(keys) > 1 else np.ones((1, 1))
    labels = _clusters(vectors, likeness.cut)
    members: dict[int, list[Wish]] = {}
    for wish in sorted(wishes, key=lambda w: (w.asked_at, w.id)):
        members.setdefault(labels[keys.index(one_line(wish.text).casefold())], []).append(wish)
    groups = []
    for label, found in members.items():
        inside = [i for i, key in enumerate(keys) if labels[i] == label]
        centre = vectors[inside].mean(axis=0)
        best = keys[inside[int(np.argmax(vectors[inside] @ centre))]]
        representative = next(w.text for w in reversed(found)
                              if one_line(w.text).casefold() == best)
        groups.append(Group(tuple(found), one_line(representative)))
    return sorted(groups, key=lambda g: (-g.count, -len(g.people), -g.last_asked.timestamp(),
                                         g.ids[0]))


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    rows = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1.0, norms)


def _clusters(vectors: np.ndarray, cut: float) -> list[int]:
    """A group number for each row: average linkage on cosine distance, cut at ``cut``."""
    if len(vectors) == 1:
        return [1]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    tree = linkage(squareform(distances, checks=False), method="average")
    return [int(label) for label in fcluster(tree, cut, criterion="distance")]


def _ngram_vectors(texts: Sequence[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    return np.asarray(vectorizer.fit_transform(list(texts)).toarray())


NGRAMS = Likeness("shared words", _ngram_vectors, cut=0.75)
"""Character n-grams: repeats and near-repeats (see the module's docstring)."""
