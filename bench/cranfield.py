"""The Cranfield 1400 collection: documents, queries (numbered by position, not
by their ``.I``), graded judgements (CRLF and LF mixed), and the metrics."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

# next to the repository; BENCH_CRANFIELD_DIR elsewhere (a git worktree, another checkout)
DEFAULT_DIR = Path(
    os.environ.get("BENCH_CRANFIELD_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "cranfield"
)


@dataclass(frozen=True)
class Doc:
    doc_id: str
    title: str
    abstract: str


def _records(path: Path) -> list[dict[str, str]]:
    records: list[dict[str, str]] = []
    field = ""
    for raw in path.read_text(encoding="latin-1").splitlines():
        line = raw.rstrip("\r")
        if line.startswith(".I "):
            records.append({"I": line[3:].strip()})
            field = ""
        elif re.fullmatch(r"\.[TABW]", line.strip()):
            field = line.strip()[1]
            records[-1].setdefault(field, "")
        elif records and field:
            records[-1][field] += line.strip() + " "
    return [{k: v.strip() for k, v in r.items()} for r in records]


def load_docs(directory: Path) -> list[Doc]:
    return [
        Doc(r["I"], r.get("T", ""), r.get("W", ""))
        for r in _records(directory / "cran.all.1400")
    ]


def load_queries(directory: Path) -> list[str]:
    """Query texts; query n of the judgements is the n-th record here (1-based)."""
    return [r.get("W", "") for r in _records(directory / "cran.qry")]


def load_qrels(directory: Path) -> dict[int, dict[str, float]]:
    """query position -> {doc id: gain}; gain = 5 - code for codes 1..4."""
    qrels: dict[int, dict[str, float]] = {}
    for raw in (directory / "cranqrel").read_bytes().decode("ascii").splitlines():
        parts = raw.strip().split()
        if len(parts) != 3:
            continue
        query, doc, code = int(parts[0]), parts[1], int(parts[2])
        if 1 <= code <= 4:
            qrels.setdefault(query, {})[doc] = float(5 - code)
    return qrels


def body_text(doc: Doc) -> str:
    """The abstract without its first sentence when that repeats the title
    (Cranfield abstracts do): the service indexes the title as every chunk's
    heading already, so keeping it would count title words twice."""
    words = doc.abstract.split()
    title = doc.title.split()
    if title and words[: len(title)] == title:
        return " ".join(words[len(title) :]) or doc.abstract
    return doc.abstract


def write_jsonl(docs: list[Doc], path: Path, dedup_title: bool = True) -> None:
    with path.open("w", encoding="utf-8") as out:
        for doc in docs:
            text = body_text(doc) if dedup_title else doc.abstract
            record = {
                "id": doc.doc_id,
                "title": doc.title or doc.doc_id,
                "text": text or doc.title or "-",
                # published abstracts: public (ingest refuses a document without a clearance)
                "clearance_level": 1,
            }
            out.write(json.dumps(record) + "\n")


def ndcg_at(ranked: list[str], gains: dict[str, float], k: int = 10) -> float:
    dcg = sum(gains.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], gains: dict[str, float], k: int = 100) -> float:
    relevant = {d for d, g in gains.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0
