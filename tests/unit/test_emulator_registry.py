"""The Snowflake emulator's control-plane registry (``aurora_sync_ops.local.snowflake.catalog``):
what survives a restart, and what a change costs to record.

Each object and each file queued for a pipe is a small file of its own, so a change writes only
that file: rewriting one document of every object on each change made creating N tables' objects
cost N squared, and a large run's loads wait on each other (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

from aurora_sync_ops.local.snowflake.catalog import Registry


def files(root: Path) -> dict[Path, tuple[int, str]]:
    return {f: (f.stat().st_mtime_ns, f.read_text()) for f in root.parent.rglob("*.json")}


def test_a_change_writes_only_its_own_object(tmp_path: Path) -> None:
    path = tmp_path / "control_plane.json"
    registry = Registry(path)
    registry.put("pipes", "DB.S.P", {"name": "P"})
    registry.put("tasks", "DB.S.T", {"name": "T"})
    before = files(path)
    assert len(before) == 2 and not path.exists()

    registry.put("pipes", "DB.S.Q", {"name": "Q"})
    registry.put("pending", "DB.S.P|a.csv", {"pipe": "DB.S.P", "file_name": "a.csv"})
    after = files(path)
    assert {f: after[f] for f in before} == before
    assert len(after) == 4

    registry.remove("pipes", "DB.S.Q")
    registry.remove("pending", "DB.S.P|a.csv")
    assert files(path) == before


def test_objects_and_queued_files_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "control_plane.json"
    registry = Registry(path)
    registry.put("pipes", "DB.S.P", {"name": "P"})
    registry.put("streams", "DB.S.B", {"name": "B"})
    registry.put("streams", "DB.S.A", {"name": "A"})
    registry.put("pending", "DB.S.P|a.csv", {"pipe": "DB.S.P", "file_name": "a.csv"})
    registry.put("pending", "DB.S.P|b.csv", {"pipe": "DB.S.P", "file_name": "b.csv"})
    registry.remove("pending", "DB.S.P|a.csv")

    again = Registry(path)
    assert again.items("pending") == [("DB.S.P|b.csv", {"pipe": "DB.S.P", "file_name": "b.csv"})]
    assert again.get("pipes", "DB.S.P") == {"name": "P"}
    assert again.items("streams") == [("DB.S.A", {"name": "A"}), ("DB.S.B", {"name": "B"})]
    again.remove("pending", "DB.S.P|b.csv")
    assert Registry(path).items("pending") == []


def test_a_registry_document_of_an_older_version_is_moved_into_the_files(tmp_path: Path) -> None:
    # A stack state written when every object, and once the queued files too, lived in one document.
    path = tmp_path / "control_plane.json"
    path.write_text(
        json.dumps(
            {"pipes": {"DB.S.P": {"name": "P"}}, "pending": {"DB.S.P|old.csv": {"file_name": "old.csv"}}}
        )
    )
    Registry(path)
    assert not path.exists()
    registry = Registry(path)
    assert registry.get("pipes", "DB.S.P") == {"name": "P"}
    assert registry.items("pending") == [("DB.S.P|old.csv", {"file_name": "old.csv"})]
    registry.remove("pending", "DB.S.P|old.csv")
    assert Registry(path).items("pending") == []
