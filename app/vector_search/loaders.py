"""Read source documents (Markdown, text, HTML, JSON Lines) with their metadata.

Metadata comes from YAML front matter (Markdown/text), ``<meta>`` tags (HTML),
a sidecar ``NAME.meta.json`` next to any file, or the fields of a JSONL record.
Known fields: id, title, url, department, campus, priority (1-5),
clearance_level (1-5, alias ``clearance``), popularity (0-1); anything else
goes to the ``metadata`` jsonb column. A document without a clearance level
is loaded with ``clearance_level=None``: the ingestor refuses it or applies
DEFAULT_CLEARANCE_LEVEL, never a public default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import yaml

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".text"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES


class DocumentError(ValueError):
    """A source document is malformed; the message names the file."""


@dataclass
class SourceDocument:
    external_id: str
    title: str
    text: str
    url: str | None = None
    department: str | None = None
    campus: str | None = None
    priority: int = 3
    # None: the metadata gave none (see Ingestor: refused or DEFAULT_CLEARANCE_LEVEL)
    clearance_level: int | None = None
    popularity: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    # where it came from (file, or file:line for JSON Lines), for messages
    origin: str = ""


def _int_field(value: Any, name: str, where: str, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DocumentError(
            f"{where}: {name} must be an integer, got {value!r}"
        ) from None
    if not lo <= number <= hi:
        raise DocumentError(
            f"{where}: {name} must be between {lo} and {hi}, got {number}"
        )
    return number


def build_document(
    meta: dict[str, Any], text: str, default_id: str, default_title: str, where: str
) -> SourceDocument:
    meta = dict(meta)
    clearance = meta.pop("clearance_level", meta.pop("clearance", None))
    popularity = meta.pop("popularity", 0.0)
    try:
        popularity_value = float(popularity)
    except (TypeError, ValueError):
        raise DocumentError(
            f"{where}: popularity must be a number, got {popularity!r}"
        ) from None
    if not 0.0 <= popularity_value <= 1.0:
        raise DocumentError(f"{where}: popularity must be between 0 and 1")

    def text_field(name: str) -> str | None:
        value = meta.pop(name, None)
        return None if value is None else str(value).strip() or None

    doc = SourceDocument(
        external_id=str(meta.pop("id", None) or default_id),
        title=text_field("title") or default_title,
        text=text.strip(),
        url=text_field("url"),
        department=text_field("department"),
        campus=text_field("campus"),
        priority=_int_field(meta.pop("priority", 3), "priority", where, 1, 5),
        clearance_level=None
        if clearance is None or (isinstance(clearance, str) and not clearance.strip())
        else _int_field(clearance, "clearance_level", where, 1, 5),
        popularity=popularity_value,
        origin=where,
    )
    doc.metadata = json.loads(json.dumps(meta, default=str))
    return doc


_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)


def _front_matter(text: str, where: str) -> tuple[dict[str, Any], str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise DocumentError(f"{where}: invalid front matter: {exc}") from None
    if not isinstance(meta, dict):
        raise DocumentError(f"{where}: front matter must be a mapping")
    return meta, text[match.end() :]


def _markdown_title(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


class _HTMLText(HTMLParser):
    _SKIP: ClassVar[frozenset[str]] = frozenset(
        {"script", "style", "noscript", "template"}
    )
    _BLOCK: ClassVar[frozenset[str]] = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "tr",
            "section",
            "article",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.meta: dict[str, str] = {}
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)
        if tag == "meta":
            values = dict(attrs)
            name, content = values.get("name"), values.get("content")
            if name and content is not None:
                self.meta[name.lower()] = content
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop() == tag:
                break

    def handle_data(self, data: str) -> None:
        if any(t in self._SKIP for t in self._stack):
            return
        if self._stack and self._stack[-1] == "title":
            self.title += data
            return
        self.parts.append(data)


def _sidecar(path: Path) -> dict[str, Any]:
    sidecar = path.with_name(path.name + ".meta.json")
    if not sidecar.exists():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DocumentError(f"{sidecar}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DocumentError(f"{sidecar}: must hold a JSON object")
    return data


def load_file(path: Path, relative_id: str) -> Iterator[SourceDocument]:
    where = str(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(f"{where}: cannot read: {exc}") from None
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        yield from _load_jsonl(raw, where, relative_id)
        return
    if suffix in HTML_SUFFIXES:
        parser = _HTMLText()
        parser.feed(raw)
        meta: dict[str, Any] = dict(parser.meta)
        meta.pop("viewport", None)
        meta.pop("description", None)
        meta.update(_sidecar(path))
        text = re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts))
        title = parser.title.strip() or path.stem
        yield build_document(meta, text, relative_id, title, where)
        return
    meta, body = _front_matter(raw, where)
    meta = {**meta, **_sidecar(path)}
    title = _markdown_title(body) or path.stem.replace("-", " ").replace("_", " ")
    yield build_document(meta, body, relative_id, title, where)


def _load_jsonl(raw: str, where: str, relative_id: str) -> Iterator[SourceDocument]:
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DocumentError(f"{where}:{number}: invalid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise DocumentError(f"{where}:{number}: each line must be a JSON object")
        text = record.pop("text", record.pop("content", None))
        if not isinstance(text, str):
            raise DocumentError(f"{where}:{number}: a 'text' string is required")
        if "id" not in record:
            raise DocumentError(f"{where}:{number}: an 'id' is required")
        yield build_document(
            record,
            text,
            f"{relative_id}#{number}",
            str(record["id"]),
            f"{where}:{number}",
        )


def discover(root: Path) -> Iterator[tuple[Path, str]]:
    """Supported files under ``root`` (or ``root`` itself) with ids relative to it."""
    if root.is_file():
        yield root, root.name
        return
    for path in sorted(root.rglob("*")):
        if (
            path.is_file()
            and path.suffix.lower() in SUPPORTED
            and not path.name.startswith(".")
        ):
            yield path, path.relative_to(root).as_posix()
