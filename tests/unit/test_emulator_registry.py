"""The Snowflake emulator's control-plane registry (``aurora_sync_ops.local.snowflake.catalog``):
what survives a restart, and what a queued file costs to record.

Files queued for a pipe come and go with every staged file, so each is a small file of its own;
the objects' registry file is not rewritten for them (rewriting it twice per file made a large
run's loads wait on each other, issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

from aurora_sync_ops.local.snowflake.catalog import Registry


def test_queued_files_survive_a_restart_without_rewriting_the_objects(tmp_path: Path) -> None:
    path = tmp_path / "control_plane.json"
    registry = Registry(path)
    registry.put("pipes", "DB.S.P", {"name": "P"})
    written = path.stat().st_mtime_ns, path.read_text()
    registry.put("pending", "DB.S.P|a.csv", {"pipe": "DB.S.P", "file_name": "a.csv"})
    registry.put("pending", "DB.S.P|b.csv", {"pipe": "DB.S.P", "file_name": "b.csv"})
    registry.remove("pending", "DB.S.P|a.csv")
    assert (path.stat().st_mtime_ns, path.read_text()) == written
    assert "pending" not in json.loads(path.read_text()) or not json.loads(path.read_text())["pending"]

    again = Registry(path)
    assert again.items("pending") == [("DB.S.P|b.csv", {"pipe": "DB.S.P", "file_name": "b.csv"})]
    assert again.get("pipes", "DB.S.P") == {"name": "P"}
    again.remove("pending", "DB.S.P|b.csv")
    assert Registry(path).items("pending") == []


def test_files_a_registry_file_still_holds_are_kept_queued(tmp_path: Path) -> None:
    # A stack state written before the queued files moved out of the registry file.
    path = tmp_path / "control_plane.json"
    path.write_text(json.dumps({"pipes": {}, "pending": {"DB.S.P|old.csv": {"file_name": "old.csv"}}}))
    Registry(path)
    registry = Registry(path)
    assert registry.items("pending") == [("DB.S.P|old.csv", {"file_name": "old.csv"})]
    registry.remove("pending", "DB.S.P|old.csv")
    assert Registry(path).items("pending") == []
