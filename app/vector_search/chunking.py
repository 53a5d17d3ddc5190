"""Split text into overlapping chunks measured in word-piece-like tokens.

The service talks to the embedder only through the Ollama API, so it cannot use
the model's tokenizer; instead it counts words and punctuation marks, and
counts long words as several tokens (about 4 characters each), which
over-estimates word-piece counts slightly and keeps chunks below the context.
"""

from __future__ import annotations

import math
import re

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def _cost(token: str) -> int:
    return max(1, math.ceil(len(token) / 6)) if token[0].isalnum() else 1


def chunk_text(text: str, max_tokens: int, overlap: int) -> list[str]:
    """Chunks of at most ``max_tokens`` estimated tokens, ``overlap`` shared between neighbours."""
    matches = list(_TOKEN.finditer(text))
    if not matches:
        return []
    costs = [_cost(m.group()) for m in matches]
    chunks: list[str] = []
    start = 0
    while start < len(matches):
        total = 0
        end = start
        while end < len(matches) and total + costs[end] <= max_tokens:
            total += costs[end]
            end += 1
        end = max(end, start + 1)
        chunks.append(text[matches[start].start() : matches[end - 1].end()].strip())
        if end >= len(matches):
            break
        back = 0
        next_start = end
        while next_start > start + 1 and back + costs[next_start - 1] <= overlap:
            next_start -= 1
            back += costs[next_start]
        start = next_start
    return [c for c in chunks if c]
