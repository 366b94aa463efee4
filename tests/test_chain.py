"""The decisions file's hash chain (chain.py), in process: :func:`link` and :func:`seal` write
it, :func:`verify_lines` checks it and names the first line edited, dropped, inserted or
reordered. (tests/test_audit.py runs the same checks through ``idrules verify-log``.)"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from idrules.audit.chain import Verdict, link, seal, verify_lines

#: the ruleset's sha256: the chain's first ``prev``
GENESIS = hashlib.sha256(b"a ruleset").hexdigest()


def body(event_id: str, genesis: str = GENESIS, **fields: Any) -> str:
    """A decision's canonical JSON text, as a replay writes it before sealing."""
    decision = {
        "event_id": event_id,
        "outcome": "identified",
        "profile": "p_1",
        **fields,
        "ruleset": {"name": "r", "version": "1", "sha256": genesis},
    }
    return json.dumps(decision, ensure_ascii=False, separators=(",", ":"))


def chain(bodies: list[str], genesis: str = GENESIS, end: str = "\n") -> list[bytes]:
    """``bodies`` sealed one after the other from ``genesis``, as lines of a decisions file."""
    lines, prev = [], genesis
    for text in bodies:
        line, prev = seal(text, prev, end)
        lines.append(line.encode("utf-8"))
    return lines


def sealed(count: int) -> list[bytes]:
    """An intact decisions file of ``count`` lines (event ids e1, e2, ...)."""
    return chain([body(f"e{n}") for n in range(1, count + 1)])


def hash_of(line: bytes) -> str:
    digest: str = json.loads(line)["hash"]
    return digest


def edited(line: bytes, **changes: Any) -> bytes:
    """``line`` with some fields changed, its prev and hash kept."""
    decision = json.loads(line)
    decision.update(changes)
    return (json.dumps(decision, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def failure(verdict: Verdict) -> tuple[int | None, str]:
    """The line a failed check names, and its problem (no head on a failure)."""
    assert not verdict.ok and verdict.head is None, verdict
    assert verdict.problem is not None
    return verdict.bad_line, verdict.problem


class TestLink:
    """link(prev, body): the hash that chains a line to the one before it."""

    def test_is_sha256_of_prev_then_body(self) -> None:
        """The hash is sha256 over the previous hash's hex followed by the body, in UTF-8."""
        text = body("e1", name="Zoë")
        assert link(GENESIS, text) == hashlib.sha256((GENESIS + text).encode()).hexdigest()

    def test_depends_on_the_previous_line(self) -> None:
        """One body after two different lines gets two different hashes."""
        other = hashlib.sha256(b"another line").hexdigest()
        assert link(GENESIS, body("e1")) != link(other, body("e1"))


class TestSeal:
    """seal(body, prev, end): the line a decisions file holds."""

    def test_appends_prev_and_hash(self) -> None:
        """The sealed line is the body with "prev" and "hash" as its last two keys."""
        text = body("e1")
        line, digest = seal(text, GENESIS)
        decision = json.loads(line)
        assert list(decision)[-2:] == ["prev", "hash"]
        assert decision["prev"] == GENESIS and decision["hash"] == digest
        assert {k: v for k, v in decision.items() if k not in ("prev", "hash")} == json.loads(text)

    def test_returns_the_hash_of_the_body(self) -> None:
        """The hash returned (and written) is link(prev, body): the next line's prev."""
        text = body("e1")
        line, digest = seal(text, GENESIS, "\n")
        assert digest == link(GENESIS, text)
        assert line.endswith(f'"hash":"{digest}"}}\n')

    def test_each_line_chains_to_the_last(self) -> None:
        """In a sealed file, each line's prev is the hash of the line before it."""
        lines = sealed(4)
        prevs = [json.loads(line)["prev"] for line in lines]
        assert prevs == [GENESIS, *map(hash_of, lines[:-1])]


class TestVerifyLines:
    """verify_lines(lines): intact, or the first line tampered with and how."""

    def test_intact_chain(self) -> None:
        """An untouched file passes: its line count and its last line's hash."""
        lines = sealed(5)
        assert verify_lines(lines) == Verdict(True, 5, hash_of(lines[-1]))

    def test_reads_a_file_as_it_is_iterated(self) -> None:
        """A binary file object (what verify-log hands it) checks like the list of lines."""
        lines = sealed(3)
        assert verify_lines(io.BytesIO(b"".join(lines))) == verify_lines(lines)

    def test_edited_line(self) -> None:
        """A changed field on line 3 is reported as an edit of line 3."""
        lines = sealed(5)
        lines[2] = edited(lines[2], outcome="rejected")
        line, problem = failure(verify_lines(lines))
        assert line == 3 and problem.startswith("edited:")

    def test_edited_hash(self) -> None:
        """A line whose hash was rewritten no longer matches its content."""
        lines = sealed(3)
        lines[1] = edited(lines[1], hash="0" * 64)
        assert failure(verify_lines(lines)) == (2, "edited: its hash does not match its content")

    def test_dropped_line(self) -> None:
        """Line 3 of 5 removed: the line now at 3 is the first that does not chain."""
        lines = sealed(5)
        del lines[2]
        assert failure(verify_lines(lines)) == (3, "a line before it was dropped (or inserted)")

    def test_dropped_first_line(self) -> None:
        """Without its first line the chain no longer starts from the ruleset's sha256."""
        line, problem = failure(verify_lines(sealed(4)[1:]))
        assert line == 1 and "does not start from the ruleset's sha256" in problem

    def test_chain_from_another_ruleset(self) -> None:
        """A first line whose prev is not its own ruleset's sha256 is refused at line 1."""
        other = hashlib.sha256(b"another ruleset").hexdigest()
        lines = chain([body("e1"), body("e2")], genesis=other)
        assert failure(verify_lines(lines))[0] == 1

    def test_inserted_copy(self) -> None:
        """A copy of line 2 inserted as line 4 is named as a copy of line 2."""
        lines = sealed(5)
        lines.insert(3, lines[1])
        assert failure(verify_lines(lines)) == (4, "inserted: a copy of line 2")

    def test_inserted_forged_line(self) -> None:
        """A forged decision correctly chained after line 2 is caught where it was put."""
        lines = sealed(5)
        forged, _ = seal(body("forged", outcome="rejected"), hash_of(lines[1]), "\n")
        lines.insert(2, forged.encode())
        assert failure(verify_lines(lines)) == (3, "inserted: line 4 chains to line 2")

    def test_reordered_lines(self) -> None:
        """Lines 3 and 4 swapped: line 3 is named as following line 4."""
        lines = sealed(5)
        lines[2], lines[3] = lines[3], lines[2]
        assert failure(verify_lines(lines)) == (3, "reordered: it follows line 4")

    def test_truncated_tail_is_a_shorter_chain(self) -> None:
        """Whole lines cut off the end leave a valid chain, whose head is not the full one's:
        only the head kept elsewhere (verify-log --head) reveals the cut."""
        lines = sealed(5)
        full = verify_lines(lines)
        cut = verify_lines(lines[:3])
        assert cut == Verdict(True, 3, hash_of(lines[2]))
        assert cut.head != full.head

    def test_torn_last_line(self) -> None:
        """A last line cut in the middle is not a sealed line: line 5, after 4 good ones."""
        lines = sealed(5)
        lines[4] = lines[4][:40]
        verdict = verify_lines(lines)
        assert failure(verdict) == (5, "no prev/hash: not a sealed decision line")
        assert verdict.lines == 4

    def test_line_that_is_not_utf8(self) -> None:
        """A byte that makes line 2 invalid UTF-8 is an edit of line 2."""
        lines = sealed(3)
        lines[1] = lines[1].replace(b'"p_1"', b'"p_\xff"')
        assert failure(verify_lines(lines)) == (2, "edited: the line is not valid UTF-8 text")

    def test_invalid_utf8_where_a_replacement_character_was(self) -> None:
        """A real U+FFFD replaced by a raw invalid byte is caught, though both decode to U+FFFD
        when errors are replaced: the hash is checked over the bytes as they are."""
        lines = chain([body("e1"), body("e2", name="Ad\ufffd"), body("e3")])
        assert verify_lines(lines).ok
        lines[1] = lines[1].replace("\ufffd".encode(), b"\xff")
        assert failure(verify_lines(lines))[0] == 2

    def test_empty_file(self) -> None:
        """No lines is no chain: nothing checked and no head (verify-log calls it an error)."""
        assert verify_lines([]) == Verdict(True, 0, None)

    def test_blank_line(self) -> None:
        """A blank line among the decisions is reported at its own line."""
        lines = sealed(3)
        lines.insert(1, b"\n")
        verdict = verify_lines(lines)
        assert failure(verdict) == (2, "no prev/hash: not a sealed decision line")
        assert verdict.lines == 1

    def test_unsealed_json_line(self) -> None:
        """A decision line without prev and hash is reported at its line."""
        lines = sealed(3)
        lines.append((body("e4") + "\n").encode())
        assert failure(verify_lines(lines))[0] == 4

    def test_line_endings_are_not_hashed(self) -> None:
        """CRLF line ends and a last line without a newline verify: the hash covers the
        decision, not its line terminator."""
        bodies = [body(f"e{n}") for n in range(1, 4)]
        crlf = chain(bodies, end="\r\n")
        assert verify_lines(crlf) == verify_lines(chain(bodies))
        bare = chain(bodies)
        bare[-1] = bare[-1].rstrip(b"\n")
        assert verify_lines(bare).ok

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.dictionaries(
                st.text(st.characters(codec="utf-8"), max_size=5),
                st.text(st.characters(codec="utf-8"), max_size=12) | st.integers(),
                max_size=3,
            ),
            min_size=1,
            max_size=6,
        )
    )
    def test_any_sealed_chain_verifies(self, extras: list[dict[str, Any]]) -> None:
        """Any decisions, sealed in order, verify, with the last line's hash as the head."""
        bodies = [body(f"e{n}", extra=extra) for n, extra in enumerate(extras)]
        lines = chain(bodies)
        assert verify_lines(lines) == Verdict(True, len(lines), hash_of(lines[-1]))

    @settings(max_examples=300, deadline=None)
    @given(
        count=st.integers(1, 5), where=st.floats(0, 1, exclude_max=True), byte=st.integers(0, 255)
    )
    def test_any_single_byte_change_is_detected(self, count: int, where: float, byte: int) -> None:
        """Any one byte of a decisions file changed to another value makes the check fail,
        except the last line's newline turned into a carriage return (a line ending, which is
        not hashed: see test_line_endings_are_not_hashed)."""
        data = bytearray(b"".join(sealed(count)))
        index = int(where * len(data))
        assume(byte != data[index])
        assume(not (index == len(data) - 1 and byte == ord("\r")))
        data[index] = byte
        assert not verify_lines(io.BytesIO(bytes(data))).ok
