"""``config push`` and ``config pull``: a config file <-> one SSM parameter per table.

Push compares canonical JSON (``TableConfig.dump_json``) so that a parameter written by hand
with other spacing or key order but the same meaning counts as unchanged and is not rewritten
(every write is a new parameter version and a CloudTrail event). A parameter under the path
that the file no longer has is only reported unless pruning was asked for: deleting a table's
config stops its sync, which should never happen because of a file that was cut short.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aurora_sync.aws_errors import classify_aws_error
from aurora_sync.config import (
    InvalidTable,
    LoadedTable,
    TableConfigResult,
    load_table_configs,
    normalise_path,
    put_table_config,
)

Action = Literal["created", "updated", "unchanged", "removed", "removed-not-pruned"]
# DeleteParameters takes at most 10 names per call.
_DELETE_BATCH = 10


@dataclass(frozen=True)
class PushEntry:
    name: str
    parameter: str
    action: Action
    config: LoadedTable | None = None  # what is written, for created/updated

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.name, "parameter": self.parameter, "action": self.action}


def plan_push(
    wanted: Sequence[LoadedTable], existing: Sequence[TableConfigResult], path: str, *, prune: bool
) -> list[PushEntry]:
    """What a push does, sorted by table name; parameters nested below ``path`` are left alone."""
    path = normalise_path(path)
    current = {r.name: r for r in existing if "/" not in r.name}
    entries = []
    for table in wanted:
        before = current.get(table.name)
        if before is None:
            action: Action = "created"
        elif isinstance(before, LoadedTable) and before.config.dump_json() == table.config.dump_json():
            action = "unchanged"
        else:
            action = "updated"  # an invalid parameter is replaced by the file's valid entry
        entries.append(PushEntry(table.name, f"{path}{table.name}", action, table))
    names = {t.name for t in wanted}
    for name in sorted(set(current) - names):
        entries.append(PushEntry(name, f"{path}{name}", "removed" if prune else "removed-not-pruned"))
    return sorted(entries, key=lambda e: e.name)


def apply_push(entries: Sequence[PushEntry], path: str, ssm: Any) -> None:
    for entry in entries:
        if entry.config is not None and entry.action in ("created", "updated"):
            # Created entries refuse to overwrite: a parameter that appeared since the plan was
            # read belongs to someone else's push.
            put_table_config(entry.name, entry.config.config, path, entry.action == "updated", ssm_client=ssm)
    doomed = [e.parameter for e in entries if e.action == "removed"]
    for start in range(0, len(doomed), _DELETE_BATCH):
        batch = doomed[start : start + _DELETE_BATCH]
        # Names already gone (a concurrent prune) come back as InvalidParameters: the end state
        # is the wanted one, so they are not an error.
        _ssm_call("DeleteParameters", path, lambda b=batch: ssm.delete_parameters(Names=b))


def _ssm_call(action: str, path: str, call: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except (BotoCoreError, ClientError) as exc:
        raise classify_aws_error(
            exc,
            call=f"ssm:{action}",
            resource=f"the parameters under {path}",
            grant=f"use credentials allowed ssm:{action} on the parameters under {path}",
            retry_fix="check the AWS endpoint, region and network, then push again (it is idempotent)",
        ) from None


def read_parameters(path: str, ssm: Any) -> list[TableConfigResult]:
    return load_table_configs(path, ssm_client=ssm, max_age=0)


# --- pull --------------------------------------------------------------------------------------
def pulled_document(results: Sequence[TableConfigResult]) -> dict[str, Any]:
    """``{name: config}`` of the valid parameters, every field written out (canonical)."""
    return {r.name: json.loads(r.config.dump_json()) for r in results if isinstance(r, LoadedTable)}


def render_pulled(document: dict[str, Any], path: str, fmt: Literal["yaml", "json"]) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, sort_keys=True) + "\n"
    import yaml

    header = (
        f"# aurora-sync table configs pulled from SSM {normalise_path(path)} at "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}\n"
        f"# one entry per table (the parameter name); push back with:\n"
        f"#   aurora-sync config push FILE --config-path {normalise_path(path)}\n"
    )
    if not document:
        return header + "{}\n"
    # safe_dump quotes strings that would read back as another type (dates, "true", numbers).
    return header + yaml.safe_dump(document, sort_keys=True, default_flow_style=False, allow_unicode=True)


def invalid_parameters(results: Sequence[TableConfigResult]) -> list[InvalidTable]:
    return [r for r in results if isinstance(r, InvalidTable)]
