"""Transitional: the state messages moved to ``aurora_sync.messages``.

Only ``aurora_sync_ops.workflow`` still imports from here, and it is being split (issue 13,
item 7) in parallel with this move; delete this module once it imports ``aurora_sync.messages``.
"""

from .messages import NewColumn

__all__ = ["NewColumn"]
