"""Which model names the stand-in serves and which have been "pulled"."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ollama_standin.model import DIMENSION

MANIFEST_NAME = "ollama-standin-manifest.json"
_FAKE_SIZE = 22_928_619


def canonical(name: str) -> str:
    """``all-minilm`` and ``all-minilm:latest`` name the same model."""
    name = name.strip()
    return name if ":" in name else f"{name}:latest"


@dataclass
class ModelRegistry:
    servable: list[str]
    models_dir: Path
    _present: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.servable = [canonical(n) for n in self.servable]
        self._load()

    @property
    def _manifest(self) -> Path:
        return self.models_dir / MANIFEST_NAME

    def _load(self) -> None:
        try:
            data = json.loads(self._manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            self._present = {
                canonical(k): str(v)
                for k, v in data.items()
                if canonical(k) in self.servable
            }

    def _save(self) -> None:
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            tmp = self._manifest.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._present, indent=2), encoding="utf-8")
            tmp.replace(self._manifest)
        except OSError:
            pass  # an unwritable models dir only loses persistence across restarts

    def can_serve(self, name: str) -> bool:
        return canonical(name) in self.servable

    def is_present(self, name: str) -> bool:
        with self._lock:
            return canonical(name) in self._present

    def mark_present(self, name: str) -> None:
        with self._lock:
            key = canonical(name)
            if key not in self._present:
                self._present[key] = datetime.now(UTC).isoformat()
                self._save()

    def tags(self) -> list[dict[str, object]]:
        with self._lock:
            present = dict(self._present)
        return [
            {
                "name": name,
                "model": name,
                "modified_at": modified,
                "size": _FAKE_SIZE,
                "digest": "sha256:8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
                "details": {
                    "parent_model": "",
                    "format": "onnx",
                    "family": "bert",
                    "families": ["bert"],
                    "parameter_size": "23M",
                    "quantization_level": "int8",
                    "embedding_length": DIMENSION,
                    "standin": True,
                },
            }
            for name, modified in sorted(present.items())
        ]
