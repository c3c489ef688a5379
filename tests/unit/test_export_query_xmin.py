"""The epoch-aware xmin window of export_query, without a server; the predicates evaluated in
PostgreSQL are tests/library/test_export_query_modes.py."""

from __future__ import annotations

from aurora_sync import export_query as q

EPOCH = 1 << 32


def test_a_watermark_past_the_snapshot_means_the_source_went_back() -> None:
    back = q.xmin_range("1000", 900)
    assert back.everything and back.went_back
    # Decided against the run's first chunk: a later chunk whose xmax passed the watermark
    # meanwhile still reads everything, like the first one did.
    later = q.xmin_range("1000", 1200, run_xmax=900)
    assert later.everything and later.went_back
    assert not q.xmin_range("1000", 1200, run_xmax=1000).everything


def test_a_watermark_equal_to_xmax_selects_nothing_visible() -> None:
    window = q.xmin_range(str(7 * EPOCH + 500), 7 * EPOCH + 500)
    assert (window.lo, window.distance) == (500, 0)
