"""The compiled scanner's own pieces: its reject classification equals
parser.classify_reason, and `RangeScan` adds blocks exactly as `Tally.merge` of their
exact tallies would, also when a table goes over the cap (then it is merged block by
block) and when a block is refused (rescanned exactly)."""

from __future__ import annotations

import inspect
import random
import re
import time
from collections import Counter

import pytest
from test_logs_fast_equals_exact import _corpus_messages, _fields, _stamps

from postharden.logs import analyze, cscan, fastscan, parser
from postharden.logs.analyze import Tally
from postharden.logs.parser import classify_reason
from postharden.logs.scan import Window, scan_block

pytestmark = pytest.mark.skipif(not cscan.available(), reason="the C scanner is not built")

# The phrases classify_reason looks for, read from its source (a phrase added there is
# tested here too).
PHRASES = re.findall(r'"([^"]+)" in low', inspect.getsource(classify_reason))
PRINTABLE = re.compile(r"[ -~]*")


def _c_classify(text: str) -> tuple[str, str | None]:
    assert cscan._scan is not None
    got: tuple[str, str | None] = cscan._scan.classify(text.encode())
    return got


def _recase(rng: random.Random, text: str) -> str:
    return "".join(c.upper() if rng.random() < 0.3 else c for c in text)


def _random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(1, 5)):
        pick = rng.randrange(6)
        if pick == 0:
            parts.append(rng.choice(PHRASES))
        elif pick == 1:
            parts.append(_recase(rng, rng.choice(PHRASES)))
        elif pick == 2:  # list names, with and without a name after the phrase
            sep = rng.choice(["", " ", ";", ",", "  ", "; "])
            name = rng.choice(["zen.spamhaus.org", "b.barracudacentral.org", "", "x"])
            parts.append(rng.choice(["blocked using ", "Blocked using ", "blocked using"]))
            parts.append(sep + name + rng.choice(["", ";", ",", " rest", "; Client host"]))
        elif pick == 3:
            parts.append(f"[{rng.randrange(256)}.{rng.randrange(256)}.0.{rng.randrange(256)}]")
        elif pick == 4:
            phrase = rng.choice(PHRASES)
            i = rng.randrange(len(phrase))
            parts.append(phrase[:i] + rng.choice(["", " ", "x", "-"]) + phrase[i + 1 :])
        else:
            parts.append(rng.choice(["Service unavailable", "<a@b.test>:", "4.7.1", ";", ","]))
    return rng.choice([" ", "", "; ", ": "]).join(parts)


def test_classification_equals_classify_reason() -> None:
    assert len(PHRASES) > 25  # the source was read
    texts = list(PHRASES) + [p.upper() for p in PHRASES] + ["", "other", "blocked using"]
    for _prog, msg in _corpus_messages([]):
        if "reject" in msg:
            texts.append(msg)
            texts.extend(msg[m.end() :] for m in re.finditer(r"\]: |: ", msg))
    rng = random.Random(7)
    texts.extend(_random_text(rng) for _ in range(20_000))
    seen = set()
    for text in texts:
        if PRINTABLE.fullmatch(text) and len(text) <= 4000:
            got = _c_classify(text)
            assert got == classify_reason(text), text
            seen.add(got[0])
    # every class, the list names included, was met
    assert seen >= {r for r, _ in map(classify_reason, PHRASES)} | {"other"}
    assert ("rbl", None) in map(_c_classify, texts[-20_000:])


# --- RangeScan ---------------------------------------------------------------------------


def _lines(rng: random.Random, stamps: list[str], ips: int) -> str:
    out = []
    for i, ts in enumerate(stamps):
        ip = f"10.{rng.randrange(3)}.{rng.randrange(ips)}.{rng.randrange(1, 9)}"
        user = f"u{rng.randrange(60)}"
        shape = i % 6
        if shape == 0:
            out.append(
                f"{ts} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[{ip}]: 554 5.7.1 "
                "<v@o.test>: Relay access denied; from=<a@b.test> to=<v@o.test> proto=ESMTP "
                "helo=<h>"
            )
        elif shape == 1:
            out.append(
                f"{ts} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[{ip}]: 554 5.7.1 "
                f"Service unavailable; Client host [{ip}] blocked using zen{i % 7}.test; "
                "from=<a@b.test> to=<v@o.test> proto=ESMTP helo=<h>"
            )
        elif shape == 2:
            out.append(
                f"{ts} mx postfix/smtpd[1]: ABCDEF{i:04X}: client=c[{ip}], sasl_method=PLAIN, "
                f"sasl_username={user}"
            )
        elif shape == 3:
            out.append(
                f"{ts} mx postfix/smtpd[1]: warning: b[{ip}]: SASL PLAIN authentication failed: "
                f"(reason unavailable), sasl_username={user}"
            )
        elif shape == 4:
            out.append(
                f"{ts} mx postfix/qmgr[2]: ABCDEF{i:04X}: from=<s{i % 5}@x.test>, size={i}, "
                "nrcpt=1 (queue active)"
            )
        else:  # the parser's lines: unparsed, fatal, a reject text that moves its split
            out.append(
                rng.choice(
                    [
                        f"{ts} mx postfix/smtp[3]: ABCDEF{i:04X}: to=<x@y",
                        f"{ts} mx postfix/master[4]: fatal: no {i}",
                        f"{ts} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[{ip}]: 550 "
                        f"5.7.1 <a@b>: mail from c[{ip}]; from=<a@b> proto=SMTP",
                    ]
                )
            )
    return "\n".join(out) + "\n"


def _blocks(text: str, lines_per_block: int) -> list[bytes]:
    lines = text.encode().splitlines(keepends=True)
    return [b"".join(lines[i : i + lines_per_block]) for i in range(0, len(lines), lines_per_block)]


def _reference(blocks: list[bytes], ref: float) -> Tally:
    """What scan.py's merge of exact block tallies gives."""
    tally = Tally()
    for block in blocks:
        tally.merge(scan_block(block, 2025, 3, ref, Window(), True))
    return tally


def _range(blocks: list[bytes], ref: float, refuse: set[int] = frozenset()) -> cscan.RangeScan:
    scan = cscan.RangeScan()
    for i, block in enumerate(blocks):
        if i in refuse or not scan.add_block(block, 2025, 3, ref, None, None, None):
            scan.add_tally(scan_block(block, 2025, 3, ref, Window(), True))
    return scan


@pytest.mark.parametrize("cap", [40, 400, 50_000])
def test_range_scan_equals_merged_blocks(monkeypatch: pytest.MonkeyPatch, cap: int) -> None:
    for module in (analyze, fastscan, cscan):
        monkeypatch.setattr(module, "CAP", cap)
    rng = random.Random(cap)
    start = time.mktime((2025, 3, 1, 10, 0, 0, 0, 0, -1))
    blocks = _blocks(_lines(rng, _stamps(start, 3000, 2.1), 60), 250)
    ref = start + 86400
    for refuse in (set(), {3, 7}):
        scan = _range(blocks, ref, refuse)
        per_block = scan._per_block
        assert _fields(scan.tally()) == _fields(_reference(blocks, ref))
        names = [cscan.TABLES[i] for i in range(len(cscan.TABLES)) if per_block >> i & 1]
        if cap == 40:  # most tables went over the cap: merged block by block
            assert {"reject_client", "login_user_client", "sasl_fail_client"} <= set(names)
        elif cap == 400:  # a few did, the others stayed in C
            assert "login_user_client" in names and "reject_reason" not in names
        else:
            assert not names


def test_range_scan_sender_sums_beyond_int64() -> None:
    """Sizes whose sum leaves int64 over the range (not inside a block): the sender table
    comes to Python."""
    start = time.mktime((2025, 3, 1, 10, 0, 0, 0, 0, -1))
    size = 10**15 - 1  # the scanner takes sizes of up to 15 digits
    text = "".join(
        f"{ts} mx postfix/qmgr[2]: ABCDEF{i:05X}: from=<s{i % 3}@x.test>, size={size}, "
        "nrcpt=1 (queue active)\n"
        for i, ts in enumerate(_stamps(start, 15_000, 0.2))
    )
    blocks = _blocks(text, 5000)
    ref = start + 86400
    scan = _range(blocks, ref)
    assert scan._per_block == 1 << cscan.TABLES.index("sender")
    tally = scan.tally()
    assert sum(tally.sender_bytes.values()) == 15_000 * size > 2**63
    assert _fields(tally) == _fields(_reference(blocks, ref))


def test_a_failing_callback_leaves_no_half_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A callback that raises: the error comes through, and the scanner's cache does not
    keep the entry it was filling."""
    calls = []

    def flaky(program: bytes) -> bool:
        calls.append(program)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return parser.is_postfix_program(program.decode())

    assert cscan._scan is not None
    scanner = cscan._scan.Scanner(
        cscan._stamp_info, flaky, cscan._disconnect_failures, cscan._reply_span
    )
    line = b"Mar  1 10:00:00 mx postfix/smtpd[1]: connect from x[192.0.2.1]\n"
    with pytest.raises(RuntimeError, match="boom"):
        scanner.scan(line, 2025, None, None)
    odd, unsure, _months, _sizes = scanner.scan(line, 2025, None, None)
    assert (odd, unsure) == ([], 0) and len(calls) == 2
    scanner.commit(0)
    assert scanner.totals()[1:3] == (1, 1)  # one line, a Postfix one


def test_unparsed_and_fatal_lines_once_the_samples_are_taken() -> None:
    """The parser keeps the text of the first SAMPLES unparsed and fatal lines; once the
    range has them, the scanner counts such lines itself (a `to=` message without
    `relay=`, `fatal:`, `panic:`), with the same report."""
    start = time.mktime((2025, 3, 1, 10, 0, 0, 0, 0, -1))
    shapes = [
        "postfix/smtp[3]: ABCDEF{i:04X}: to=<x{i}@y",  # unparsed, in C once full
        "postfix/smtp[3]: ABCDEF{i:04X}: to=<x@y>, relay=none, delay=1",  # the parser's
        "postfix/master[4]: fatal: no {i}",
        "postfix/smtpd[5]: ABCDEF{i:04X}: panic: oops {i}",
        "postfix/smtpd[5]: error: open database {i}",  # always in C
        "postfix/smtpd[5]: connect from x[192.0.2.{n}]",
    ]
    stamps = _stamps(start, 1200, 3.0)
    text = "".join(
        f"{ts} mx " + shapes[i % len(shapes)].format(i=i, n=i % 200) + "\n"
        for i, ts in enumerate(stamps)
    )
    blocks = _blocks(text, 60)
    ref = start + 86400
    tally = _range(blocks, ref).tally()
    assert _fields(tally) == _fields(_reference(blocks, ref))
    assert len(tally.unparsed_samples) == len(tally.fatal_samples) == analyze.SAMPLES
    assert tally.kinds["error"] == tally.kinds["fatal"] == 200 and tally.kinds["unparsed"] > 200

    assert cscan._scan is not None
    scanner = cscan._scan.Scanner(
        cscan._stamp_info, cscan._is_postfix, cscan._disconnect_failures, cscan._reply_span
    )

    def shapes_left(full: int) -> dict[str, int]:
        odd = scanner.scan(blocks[0], 2025, None, None, full)[0]
        marks = {"unparsed": b": to=<x", "relay": b"relay=", "fatal": b": fatal:"}
        marks |= {"panic": b": panic:", "error": b": error:"}
        return {k: sum(m in raw for raw in odd) for k, m in marks.items()}

    assert shapes_left(0) == {"unparsed": 20, "relay": 10, "fatal": 10, "panic": 10, "error": 0}
    assert shapes_left(1) == {"unparsed": 10, "relay": 10, "fatal": 10, "panic": 10, "error": 0}
    assert shapes_left(2) == {"unparsed": 20, "relay": 10, "fatal": 0, "panic": 0, "error": 0}
    assert shapes_left(3) == {"unparsed": 10, "relay": 10, "fatal": 0, "panic": 0, "error": 0}


# --- packed tables and the main process's merge -------------------------------------------

KEYS = [
    "a",
    "b",
    "ab",
    "",
    "user\x00192.0.2.1",
    "line\nbreak",
    "caf\u00e9",
    "\udc80raw",
    "\U0001f600",
]


def test_pack_and_unpack() -> None:
    assert cscan._scan is not None
    table = Counter({k: i for i, k in enumerate(KEYS)}) | Counter({"big": 2**63 - 1})
    assert cscan._scan.unpack(cscan._scan.pack(table)) == table
    assert cscan._scan.pack(Counter()) is not None
    for bad in (Counter({"x": 2**63}), Counter({"x": -1}), {"x": 1.5}, {b"x": 1}):
        assert cscan._scan.pack(bad) is None
    with pytest.raises(ValueError):
        cscan._scan.unpack(b"\x05" + bytes(7))


@pytest.mark.parametrize("cap", [10, 60])
def test_merged_equals_tally_merge(monkeypatch: pytest.MonkeyPatch, cap: int) -> None:
    """cscan.Merged (packed tables merged and pruned in C) against Tally.merge, key sets
    built to tie at the prune; a count beyond int64 brings its table to Python."""
    for module in (analyze, fastscan, cscan):
        monkeypatch.setattr(module, "CAP", cap)
    rng = random.Random(cap)
    merged, reference = cscan.Merged(), Tally()
    for step in range(40):
        part = Tally()
        for name in ("reject_client", "login_user_client", "sender_bytes", "dnsbl"):
            table = getattr(part, name)
            for _ in range(rng.randrange(cap)):
                table[rng.choice(KEYS) + str(rng.randrange(cap))] += rng.randrange(1, 4)
        if step == 25:
            part.sender_bytes["huge"] = 2**63 + 5
        part.lines_total = step
        part.unparsed_samples = [f"u{step}"]
        reference.merge(part)
        blobs: cscan.Blobs = {}
        if step % 2:  # half of the parts come packed, as from a worker
            part, blobs = cscan.pack_tally(part, {})
        merged.merge(part, blobs)
    got = merged.tally()
    assert _fields(got) == _fields(reference)
    assert got.sender_bytes["huge"] >= 2**63
    assert merged._python == {"sender_bytes"}


def test_merger_refuses_an_overflow_whole() -> None:
    assert cscan._scan is not None
    merger = cscan._scan.Merger(1)
    blob = cscan._scan.pack(Counter({"a": 2**62, "b": 1}))
    assert merger.merge(0, [blob], 10)
    assert not merger.merge(0, [cscan._scan.pack(Counter({"c": 1})), blob], 10)
    assert merger.take(0) == {"a": 2**62, "b": 1}  # nothing of the refused merge


def test_callback_caches_start_over_when_full() -> None:
    """More distinct reject texts and disconnect tails than a cache of the scanner keeps
    (by count, and by bytes): the cache starts over, the counts stay the exact path's."""
    start = time.mktime((2025, 3, 1, 10, 0, 0, 0, 0, -1))
    lines = []
    for i, ts in enumerate(_stamps(start, 40_000, 0.1)):
        if i % 2:
            lines.append(
                f"{ts} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[10.0.{i % 250}.1]: "
                f"554 5.7.1 Service unavailable; Client host [10.{i}] blocked using "
                f"list{i}.test{'x' * 200}; from=<a@b.test> to=<c@d.test> proto=ESMTP helo=<h>"
            )
        else:
            lines.append(
                f"{ts} mx postfix/smtpd[1]: disconnect from x[10.1.{i % 250}.1] ehlo=1 "
                f"auth=0/{1 + i % 3} rcpt={i} commands={i}/{i + 1}"
            )
    block = ("\n".join(lines) + "\n").encode()
    ref = start + 86400
    fast = cscan.scan_c(block, 2025, 3, ref, None, None, None)
    assert fast is not None
    assert _fields(fast) == _fields(scan_block(block, 2025, 3, ref, Window(), True))
    assert len(fast.reject_rbl) == 20_000 and sum(fast.auth_fail_disconnect.values()) == 20_000
