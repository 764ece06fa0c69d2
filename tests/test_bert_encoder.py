"""nlu/_bert.py: the packaged model's embeddings without transformers, equal to
sentence-transformers'; other kinds of model still go through sentence-transformers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlu import _bert
from nlu._encoder import resolve_model
from tests.conftest import ROOT

PACKAGED = Path(resolve_model(None)[1])
TEXTS = ["deploy payments 2.4.1 to prod", "what's red in CI?", "  errors from billing  ",
         "Ünïcödé café ñ — ok?", "x", "roll back checkout on production please, it is "
         "failing health checks again and again " * 8, "status of OPS-101"]


@pytest.fixture(scope="module")
def bert() -> _bert.BertEncoder:
    encoder = _bert.load(PACKAGED)
    assert encoder is not None, "the packaged all-MiniLM-L6-v2 is a plain BERT"
    return encoder


def test_the_embeddings_are_sentence_transformers_own(bert: _bert.BertEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(PACKAGED), device="cpu").encode(
        TEXTS, batch_size=4, normalize_embeddings=True, convert_to_numpy=True)
    ours = bert.embed(TEXTS, batch_size=4)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(bert.embed(TEXTS[:1])[0], ours[0], atol=1e-5)  # alone
    assert bert.embed([]).shape == (0, 384)


def test_bfloat16_stays_close(bert: _bert.BertEncoder) -> None:
    import torch

    full = bert.embed(TEXTS)
    half = _bert.load(PACKAGED)
    assert half is not None
    cosines = (half.to(torch.bfloat16).embed(TEXTS) * full).sum(axis=1)
    assert np.all(cosines > 0.99)


def test_another_kind_of_model_goes_through_sentence_transformers(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(PACKAGED, model)
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    assert _bert.load(model) is None
    assert _bert.load(tmp_path) is None  # not a model at all


def test_the_packaged_model_loads_without_transformers() -> None:
    script = """
import sys
from nlu._encoder import load_model
model = load_model(None, "float32")
assert type(model).__name__ == "BertEncoder", type(model)
assert model.embed(["hello"]).shape == (1, 384)
print(sorted(m for m in ("transformers", "sentence_transformers") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_rasas_package_check_imports_no_transformers() -> None:
    """Rasa imports each component's required packages while it validates a training."""
    script = """
import importlib, sys
from nlu.embedding_featurizer import SentenceEmbeddingFeaturizer
for name in SentenceEmbeddingFeaturizer.required_packages():
    importlib.import_module(name)
print(sorted(m for m in ("transformers", "sentence_transformers") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
