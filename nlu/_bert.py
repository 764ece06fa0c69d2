"""A BERT sentence encoder in plain torch, without the transformers library.

sentence-transformers runs the model through transformers, whose import costs a process
about 100 MB resident and seconds (it brings in much of torch: dynamo, distributed, the
exporters), in the Rasa server and in the trainer alike (``python -m bench.memory``).
The packaged all-MiniLM-L6-v2 is a plain BERT with mean pooling; this module runs that
kind of model itself: the tokenizer from the ``tokenizers`` package (what transformers'
fast tokenizer is), the weights from ``model.safetensors``, BERT's layers as torch
operations, then sentence-transformers' mean pooling and normalisation. Its embeddings
equal sentence-transformers' to float32 rounding (tests/test_nlu_components.py).

:func:`load` answers None for a model of another kind (another architecture, pooling or
module list); ``nlu._encoder`` loads those with sentence-transformers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["BertEncoder", "load"]

_MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Normalize"]


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load(directory: Path) -> BertEncoder | None:
    """The model in ``directory`` (a sentence-transformers folder) if it is a BERT with
    mean pooling and normalisation, as all-MiniLM-L6-v2 is; None for anything else."""
    try:
        modules = _read(directory / "modules.json")
        config = _read(directory / "config.json")
        pooling = _read(directory / modules[1]["path"] / "config.json")
        sentence = _read(directory / "sentence_bert_config.json")
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    plain = (
        [m.get("type") for m in modules] == _MODULES
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and pooling.get("pooling_mode_mean_tokens") is True
        and not any(v for k, v in pooling.items()
                    if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
        and not sentence.get("do_lower_case")
        and (directory / "model.safetensors").is_file()
        and (directory / "tokenizer.json").is_file()
    )
    if not plain:
        return None
    return BertEncoder(directory, config, int(sentence.get("max_seq_length") or 512))


class BertEncoder:
    """Texts in, unit-length sentence embeddings out (float32 numpy)."""

    def __init__(self, directory: Path, config: dict[str, Any], max_length: int) -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.dim = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(
            max_length=min(max_length, int(config["max_position_embeddings"])))
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id") or 0))
        weights = load_file(str(directory / "model.safetensors"))
        self.weights = {k.removeprefix("bert."): v for k, v in weights.items()}
        self.dtype = torch.float32

    def to(self, dtype: torch.dtype) -> BertEncoder:
        """The weights in ``dtype`` (bfloat16 for parsing where the CPU has it)."""
        self.weights = {k: v.to(dtype) if v.is_floating_point() else v
                        for k, v in self.weights.items()}
        self.dtype = dtype
        return self

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        import torch.nn.functional as F

        return F.linear(x, self.weights[f"{name}.weight"], self.weights[f"{name}.bias"])

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        import torch.nn.functional as F

        return F.layer_norm(x, (self.dim,), self.weights[f"{name}.weight"],
                            self.weights[f"{name}.bias"], self.eps)

    def _forward(self, ids: torch.Tensor, types: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        w = self.weights
        batch, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length].unsqueeze(0)
             + w["embeddings.token_type_embeddings.weight"][types])
        x = self._norm(x, "embeddings.LayerNorm")
        size = self.dim // self.heads
        # Padding is masked out as transformers does: the dtype's lowest value added.
        blocked = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for i in range(self.layers):
            layer = f"encoder.layer.{i}"

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, length, self.heads, size).transpose(1, 2)

            q = heads(self._linear(x, f"{layer}.attention.self.query"))
            k = heads(self._linear(x, f"{layer}.attention.self.key"))
            v = heads(self._linear(x, f"{layer}.attention.self.value"))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=blocked)
            context = context.transpose(1, 2).reshape(batch, length, self.dim)
            x = self._norm(self._linear(context, f"{layer}.attention.output.dense") + x,
                           f"{layer}.attention.output.LayerNorm")
            inner = F.gelu(self._linear(x, f"{layer}.intermediate.dense"))
            x = self._norm(self._linear(inner, f"{layer}.output.dense") + x,
                           f"{layer}.output.LayerNorm")
        # sentence-transformers' mean pooling over the real tokens, then unit length.
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled.float(), p=2, dim=1)

    def embed(self, texts: Sequence[str], batch_size: int = 64,
              progress: bool = False) -> np.ndarray:
        """Unit-length embeddings of ``texts``, in batches of similar lengths."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # sentence-transformers strips each text, and sorts by length to pad less.
        stripped = [str(t).strip() for t in texts]
        order = sorted(range(len(stripped)), key=lambda i: -len(stripped[i]))
        out = np.zeros((len(stripped), self.dim), dtype=np.float32)
        starts: Iterable[int] = range(0, len(order), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Batches", unit="batch")
        with torch.inference_mode():
            for start in starts:
                chunk = order[start:start + batch_size]
                encoded = self.tokenizer.encode_batch([stripped[i] for i in chunk])
                ids = torch.tensor([e.ids for e in encoded], dtype=torch.long)
                types = torch.tensor([e.type_ids for e in encoded], dtype=torch.long)
                mask = torch.tensor([e.attention_mask for e in encoded], dtype=torch.long)
                out[chunk] = self._forward(ids, types, mask).numpy()
        return out
