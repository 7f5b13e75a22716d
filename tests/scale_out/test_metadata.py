"""The run metadata that lets any process find a run's thread again is documented and bounded."""

from __future__ import annotations

import json

from langchain_coasty._graph import MAX_METADATA_VALUE, run_metadata


def test_metadata_names_thread_namespace_call_and_key() -> None:
    meta = run_metadata(
        thread_id="t-1", checkpoint_ns="tools:abc", tool_call_id="call_1", idempotency_key="lc-k"
    )
    assert meta == {
        "langchain_thread_id": "t-1",
        "langchain_checkpoint_ns": "tools:abc",
        "langchain_tool_call_id": "call_1",
        "idempotency_key": "lc-k",
    }


def test_metadata_is_bounded_and_says_what_was_cut() -> None:
    meta = run_metadata(
        thread_id="t" * 5000, checkpoint_ns="n" * 5000, tool_call_id=None, idempotency_key="lc-k"
    )
    assert all(len(v) <= MAX_METADATA_VALUE for v in meta.values())
    assert meta["langchain_truncated"] == "langchain_thread_id,langchain_checkpoint_ns"
    assert "langchain_tool_call_id" not in meta
    assert len(json.dumps(meta)) < 1200
    assert len(meta) <= 5
