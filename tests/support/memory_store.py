"""The run's files in memory (``exporting.rounds.ObjectStore``), for tests without S3: every
document goes through JSON as it would through S3, and the keys read are recorded."""

from __future__ import annotations

import json
from typing import Any


class MemoryStore:
    def __init__(self, files: dict[str, Any] | None = None) -> None:
        self.files = files if files is not None else {}
        self.reads: list[str] = []

    def read_json(self, key: str) -> Any:
        self.reads.append(key)
        return json.loads(json.dumps(self.files[key]))

    def read_json_if_present(self, key: str) -> Any:
        self.reads.append(key)
        return json.loads(json.dumps(self.files[key])) if key in self.files else None

    def write_json(self, key: str, value: Any) -> None:
        self.files[key] = json.loads(json.dumps(value))
