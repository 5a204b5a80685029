"""The local gateway's framing check: what it refuses before reading a body."""

from __future__ import annotations

import pytest

from devstack.gateway import MAX_BODY_BYTES, framing_problem


@pytest.mark.parametrize(
    ("lengths", "encodings", "status"),
    [
        ([], [], 0),  # no framing: a request without a body
        (["0"], [], 0),
        (["256"], [], 0),
        ([str(MAX_BODY_BYTES)], [], 0),
        ([str(MAX_BODY_BYTES + 1)], [], 413),
        (["99999999999999999999999"], [], 413),
        (["9" * 100_000], [], 413),  # never turned into an int
        (["00000000000000000000000000012"], [], 0),
        (["-1"], [], 400),
        (["12abc"], [], 400),
        (["١٢"], [], 400),  # digits, but not ASCII ones
        ([""], [], 400),
        (["5", "6"], [], 400),
        (["5, 6"], [], 400),
        (["5", "5"], [], 0),  # the same value twice is one length (RFC 9110 8.6)
        ([], ["chunked"], 0),
        ([], ["Chunked"], 0),
        ([], ["gzip"], 400),
        ([], ["gzip, chunked"], 400),
        (["5"], ["chunked"], 400),
    ],
)
def test_framing(lengths: list[str], encodings: list[str], status: int) -> None:
    assert framing_problem(lengths, encodings) == status
