"""The fast paths (the compiled scanner `_scan`, and the pure-Python findall pass; both
with a per-line exact fallback) must give exactly the report of the exact path (every
line through the parser), on the benchmark's generated log and on odd lines: truncated
lines, other programs, multi-instance and non-`postfix` syslog names, junk, CRLF,
non-ASCII, over-long lines, New Year inside a block, time windows, RFC 3339 stamps; and
on a randomised mix of the real-log corpus with mutated lines (fixed seeds)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from postharden.logs import cscan, fastscan, scan
from postharden.logs.analyze import Tally, build_report
from postharden.logs.scan import Window, analyze_paths, scan_block
from postharden.logs.thresholds import Thresholds

BENCH = Path(__file__).parents[2] / "benchmarks/logs.py"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_logs", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_logs"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["c", "regex"], autouse=True)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both fast paths."""
    if request.param == "c" and not cscan.available():
        pytest.skip("the C scanner postharden.logs._scan is not built (no compiler)")
    monkeypatch.setattr(scan, "ENGINE", request.param)
    return str(request.param)


def _both(path: Path, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fast, _s = analyze_paths([str(path)], jobs=1, **kw)
    exact, _s = analyze_paths([str(path)], jobs=1, exact=True, **kw)
    th = Thresholds()
    return build_report(fast, th), build_report(exact, th)


def _c_odd(block: bytes) -> list[bytes]:
    """The lines the C scanner leaves to the parser."""
    assert cscan._scan is not None
    scanner = cscan._scan.Scanner(
        cscan._stamp_info, cscan._is_postfix, cscan._disconnect_failures, cscan._reply_span
    )
    odd: list[bytes] = scanner.scan(block, 2025, None, None)[0]
    return odd


def test_generated_benchmark_log(tmp_path: Path, engine: str) -> None:
    log = tmp_path / "mail.log"
    _bench().generate(log, 3_000_000, seed=3)
    fast, exact = _both(log, block=256 * 1024)
    assert fast == exact
    assert json.dumps(fast) == json.dumps(exact)  # byte-identical, key order included
    assert fast["rejects"]["total"] > 1000
    if _bench().CORPUS.is_dir():  # the corpus brings the truncated (unparsed) lines
        assert fast["lines"]["unparsed"] > 0
    # Most lines took the fast branches: the per-line fallback is the exception.
    data = log.read_bytes()
    if engine == "c":
        odd = _c_odd(data[: 1 << 20])
        assert len(odd) < 0.03 * data[: 1 << 20].count(b"\n")
        return
    rows = fastscan.PATTERN.findall(b"\n" + data)
    raw = sum(1 for r in rows if not r[fastscan._G["ts"]])
    assert raw < 0.03 * len(rows)


ODD = [
    # truncated lines (as the generator copies them from the corpus)
    "{ts} mx postfix/smtp[1]: 3mPVKl0Mhjz7sXv: to=<56597@con",
    "{ts} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 <a@b>: Rel",
    "{ts} mx postfix/smtpd[1]: warning: x[192.0.2.1]: SASL LOGIN authentication failedxyz",
    # other programs, some of them saying Postfix-like things
    "{ts} mx dovecot[5]: imap-login: Login: user=<x>, rip=192.0.2.9",
    "{ts} mx amavis[7]: connect from x[192.0.2.1]",
    "{ts} mx opendkim[8]: 1234ABCDEF: reject: RCPT from x[192.0.2.1]: 554 5.7.1 x; proto=SMTP",
    # multi-instance and non-`postfix` syslog names
    "{ts} mx postfix-out/smtp[2]: ABCDEF1234: to=<u@bounce.test>, relay=none, delay=1, "
    "dsn=5.0.0, status=bounced (host said: 550 no)",
    "{ts} mx postfix/submission/smtpd[3]: ABCDEF1235: client=c[10.9.0.1], sasl_method=PLAIN, "
    "sasl_username=eve",
    "{ts} mx mailout/smtpd[4]: NOQUEUE: reject: RCPT from y[198.51.100.7]: 554 5.7.1 "
    "<v@o.test>: Relay access denied; from=<a@b.test> to=<v@o.test> proto=ESMTP helo=<h>",
    "{ts} mx postfixadmin[4]: connect from x[192.0.2.1]",
    # rejects whose text could move the parser's split, or change its class
    "{ts} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.2]: 550 5.1.1 "
    "<greylist@x.test>: Recipient address rejected: Access denied; from=<a@b> proto=SMTP",
    "{ts} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.3]: 550 5.7.1 "
    "Client host rejected: mail from b[192.0.2.4]: go away; from=<a@b> proto=SMTP",
    "{ts} mx postfix/smtpd[1]: NOQUEUE: milter-reject: END-OF-MESSAGE from a[192.0.2.5]: "
    "451 4.7.1 Greylisting in action; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
    "{ts} mx postfix/smtpd[1]: NOQUEUE: reject_warning: RCPT from a[192.0.2.6]: 554 5.7.1 "
    "Service unavailable; Client host [192.0.2.6] blocked using zen.example; "
    "from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
    "{ts} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.7]: 554 5.7.1 "
    "Service unavailable; Client host [192.0.2.7] blocked using zen.example; "
    "from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
    # SASL tails, disconnect counts, warnings, fatals, postscreen, anvil
    "{ts} mx postfix/smtpd[1]: warning: u[192.0.2.8]: SASL PLAIN authentication failed: , "
    "sasl_username=x, sasl_username=y",
    "{ts} mx postfix/smtpd[1]: warning: u[192.0.2.8]: SASL login authentication aborted",
    "{ts} mx postfix/smtpd[1]: disconnect from u[192.0.2.8] ehlo=1 auth=0/2 auth=1/3 quit=1",
    "{ts} mx postfix/smtpd[1]: warning: problem talking to server 127.0.0.1:9999: refused",
    "{ts} mx postfix/smtpd[1]: warning: TLS library problem: error:0A000126",
    "{ts} mx postfix/smtpd[1]: warning: hostname x does not resolve to address 192.0.2.9",
    "{ts} mx postfix/smtpd[1]: warning: ",
    "{ts} mx postfix/master[1]: fatal: bind 0.0.0.0 port 25: Address already in use",
    "{ts} mx postfix/postscreen[1]: PREGREET 11 after 0.1 from [192.0.2.10]:5678: EHLO x",
    "{ts} mx postfix/anvil[1]: statistics: max connection rate 4/60s for (smtp:192.0.2.1) at "
    "Mar  1 00:00:00",
    "{ts} mx postfix/smtpd[1]: something Postfix 3.11 might say",
    # bytes the branches leave to the parser
    "{ts} mx postfix/smtpd[1]: connect from x[192.0.2.1]\r",
    "{ts} mx postfix/smtpd[1]: ABCDEF1236: client=c[10.9.0.2], sasl_method=PLAIN, "
    "sasl_username=j\u00f6rg",
    "{ts} mx postfix/smtpd[1]: connect from x[192.0.2.1]\x01",
    "Foo  1 00:00:00 mx postfix/smtpd[1]: connect from x[192.0.2.1]",
    "",
    "\x00\x01\x02 junk",
    "{ts} mx postfix/smtpd[1]: warning: " + "A" * 70_000,
]


def _odd_log(rng: random.Random, base: list[str], stamps: list[str]) -> str:
    lines = []
    for stamp in stamps:
        line = rng.choice(ODD) if rng.random() < 0.3 else rng.choice(base)
        lines.append(line.replace("{ts}", stamp))
    return "\n".join(lines) + "\n"


def _stamps(start: float, n: int, step: float) -> list[str]:
    return [time.strftime("%b %e %H:%M:%S", time.localtime(start + i * step)) for i in range(n)]


@pytest.fixture(scope="module")
def base_lines() -> list[str]:
    bench = _bench()
    out = []
    rng = random.Random(5)
    for prog, msg in bench.templates():
        text = msg.format(
            ip=f"192.0.2.{rng.randrange(1, 255)}",
            qid="ABCDEF0123",
            qid2="3210FEDCBA",
            n=rng.randrange(50),
            size=rng.randrange(100, 9000),
        )
        out.append("{ts} mx " + prog + f"[{rng.randrange(1, 9999)}]: " + text)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_odd_lines(tmp_path: Path, base_lines: list[str], seed: int) -> None:
    rng = random.Random(seed)
    start = time.mktime((2025, 3, 1, 0, 0, 0, 0, 0, -1))
    log = tmp_path / "odd.log"
    log.write_bytes(_odd_log(rng, base_lines, _stamps(start, 3000, 7.3)).encode())
    os.utime(log, (start + 86400, start + 86400))  # the year of the stamps is 2025
    fast, exact = _both(log, block=64 * 1024)
    assert fast == exact
    assert fast["lines"]["invalid"] > 0 and fast["lines"]["other"] > 0
    # Lines a few seconds out of order, and a window on both paths.
    lines = log.read_text().splitlines(keepends=True)
    for i in range(0, len(lines) - 1, 50):
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    log.write_text("".join(lines))
    os.utime(log, (start + 86400, start + 86400))
    window = Window(start + 3600, start + 5 * 3600)
    fast, exact = _both(log, block=64 * 1024, window=window)
    assert fast == exact
    assert 0 < fast["lines"]["total"] < len(lines)


def test_new_year_and_months_inside_a_block(tmp_path: Path, base_lines: list[str]) -> None:
    rng = random.Random(9)
    start = time.mktime((2024, 12, 31, 22, 0, 0, 0, 0, -1))
    log = tmp_path / "ny.log"
    log.write_text(_odd_log(rng, base_lines, _stamps(start, 2000, 9.1)))
    mtime = time.mktime((2025, 1, 2, 0, 0, 0, 0, 0, -1))
    os.utime(log, (mtime, mtime))
    for block in (16 * 1024, 1 << 20):
        fast, exact = _both(log, block=block)
        assert fast == exact
        assert fast["period"]["start"] < "2025" < fast["period"]["end"]


def test_fast_path_takes_the_block_and_refuses_when_unsure() -> None:
    ok = (
        b"Mar  1 00:00:01 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.2]: 554 "
        b"5.7.1 <v@o.test>: Relay access denied; from=<a@b> to=<v@o.test> proto=ESMTP "
        b"helo=<h>\n"
    )
    assert fastscan.scan_fast(ok, 2025, 3, time.time(), None) is not None
    unsure = ok.replace(b"<v@o.test>: Relay", b"<greylist@o.test>: Relay")
    assert fastscan.scan_fast(unsure, 2025, 3, time.time(), None) is None
    a = scan_block(unsure, 2025, 3, time.time(), Window(), False)
    b = scan_block(unsure, 2025, 3, time.time(), Window(), True)
    assert build_report(a, Thresholds()) == build_report(b, Thresholds())


# --- randomised differential test over the real-log corpus ---------------------------------

_JSONL = "whyscream-postfix-grok-patterns_ALL_test_data.jsonl"
_PROGRAM = re.compile(r"test_([a-z_]+?)_\d+\.yaml")


def _corpus_messages(base_lines: list[str]) -> list[tuple[str, str]]:
    """(program, message) pairs: every corpus line, the recorded dialogue, the odd lines."""
    out: list[tuple[str, str]] = []
    for line in [*base_lines, *ODD]:
        m = re.match(r"\{ts\} mx (\S+?)\[\d+\]: (.*)$", line, re.S)
        if m:
            out.append((m.group(1), m.group(2)))
    corpus = _bench().CORPUS
    if corpus.is_dir():
        head = re.compile(
            r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) \S+ (\S+?)(?:\[\d+\])?: (.*)$"
        )
        for f in sorted(corpus.iterdir()):
            text = f.read_text(errors="replace")
            if f.name == _JSONL:
                for row in text.splitlines():
                    rec = json.loads(row)
                    pm = _PROGRAM.match(rec.get("file", ""))
                    service = pm.group(1).replace("_", "-") if pm else "smtpd"
                    out.append((f"postfix/{service}", str(rec.get("data", ""))))
                continue
            for line in text.splitlines():
                m = head.match(line)
                if m:
                    out.append((m.group(1), m.group(2)))
    return out


def _mutate(rng: random.Random, msg: str) -> str:
    how = rng.randrange(8)
    if not msg or how >= 4:
        return msg
    i = rng.randrange(len(msg))
    if how == 0:  # truncated
        return msg[:i]
    if how == 1:  # one character changed, often to a structural one
        return msg[:i] + rng.choice("<>[]:;, =/.-0aZ \t\x00\u00e9") + msg[i + 1 :]
    if how == 2:  # a piece repeated
        j = rng.randrange(i, len(msg) + 1)
        return msg[:j] + msg[i:j] + msg[j:]
    return (
        msg[:i]
        + rng.choice([" from ", "; ", ": ", "greylist", "proto=", "auth=0/1", "[", "]"])
        + msg[i:]
    )


def _stamp(rng: random.Random, t: float) -> str:
    """A header stamp in one of the formats the fast paths take (or leave to the parser)."""
    lt = time.localtime(t)
    frac = f"{t % 1:.6f}"[1:]
    style = rng.randrange(7)
    if style == 0:
        return time.strftime("%b %e %H:%M:%S", lt)
    if style == 1:
        return time.strftime("%b %d %H:%M:%S", lt)
    if style == 2:  # maillog_file / high-precision syslog
        return time.strftime("%b %e %H:%M:%S", lt) + frac
    if style == 3:  # rsyslog's RFC 3339 with the local offset
        off = time.strftime("%z", lt)
        return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + frac + off[:3] + ":" + off[3:]
    if style == 4:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + frac[:4] + "Z"
    if style == 5:
        return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + time.strftime("%z", lt)
    return time.strftime("%Y-%m-%d %H:%M:%S", lt)


def _mixed_log(rng: random.Random, messages: list[tuple[str, str]], n: int, start: float) -> bytes:
    lines = []
    t = start
    for _ in range(n):
        prog, msg = rng.choice(messages)
        msg = _mutate(rng, msg.replace("{", "(").replace("}", ")"))
        if rng.random() < 0.05:
            prog = rng.choice(["postfix-out/smtp", "postfix/submission/smtpd", "dovecot", "smtpd"])
        t += rng.random() * 20
        pid = f"[{rng.randrange(1, 99999)}]" if rng.random() < 0.9 else ""
        lines.append(f"{_stamp(rng, t)} mx {prog}{pid}: {msg}\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("seed", [11, 12])
def test_randomised_corpus_mix(tmp_path: Path, base_lines: list[str], seed: int) -> None:
    rng = random.Random(seed)
    messages = _corpus_messages(base_lines)
    start = time.mktime((2025, 3, 1, 0, 0, 0, 0, 0, -1))
    log = tmp_path / "mix.log"
    log.write_bytes(_mixed_log(rng, messages, 6000, start))
    os.utime(log, (start + 40 * 86400, start + 40 * 86400))
    for block, window in (
        (32 * 1024, Window()),
        (7 * 1024, Window(start + 3 * 3600 + 0.5, start + 20 * 3600 + 0.25)),
    ):
        fast, exact = _both(log, block=block, window=window)
        assert json.dumps(fast) == json.dumps(exact)
    assert fast["lines"]["total"] > 1000 and fast["rejects"]["total"] > 0


def _fields(t: Tally) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(t):
        v = getattr(t, f.name)
        if f.name == "hourly":
            v = {h: dict(c) for h, c in v.items() if c}
        elif isinstance(v, dict):
            v = {k: n for k, n in v.items() if n}
        out[f.name] = v
    return out


def test_every_corpus_line_alone(base_lines: list[str], engine: str) -> None:
    """Line by line (so that no difference hides in a sum): each corpus message, plain and
    mutated, in every header format, gives the exact path's Tally."""
    rng = random.Random(21)
    messages = _corpus_messages(base_lines)
    t = time.mktime((2025, 3, 1, 0, 0, 0, 0, 0, -1))
    ref = t + 40 * 86400
    for prog, msg in messages:
        for variant in (msg, _mutate(rng, msg), _mutate(rng, msg)):
            t += 61.7
            raw = f"{_stamp(rng, t)} mx {prog}[7]: {variant}\n".encode("utf-8", "surrogateescape")
            fast = scan_block(raw, 2025, 3, ref, Window(), False)
            exact = scan_block(raw, 2025, 3, ref, Window(), True)
            assert _fields(fast) == _fields(exact), raw


def test_recipient_count_of_ten_digits(tmp_path: Path) -> None:
    """`nrcpt=` of 10+ digits: not cut to its first 9 by the fast path (regex and C)."""
    start = time.mktime((2025, 3, 1, 10, 0, 0, 0, 0, -1))
    stamps = _stamps(start, 6, 1.0)
    counts = ["1", "123456789", "1234567890", "98765432101234", "7", "12345678901234567890"]
    log = tmp_path / "nrcpt.log"
    log.write_text(
        "".join(
            f"{ts} mx postfix/qmgr[2]: ABCDEF012{i}: from=<big@example.test>, size=10, "
            f"nrcpt={n} (queue active)\n"
            for i, (ts, n) in enumerate(zip(stamps, counts, strict=True))
        )
    )
    fast, _s = analyze_paths([str(log)], jobs=1)
    exact, _s = analyze_paths([str(log)], jobs=1, exact=True)
    assert fast == exact
    assert exact.sender_rcpts["big@example.test"] == sum(int(n) for n in counts)
    f_report, e_report = _both(log)
    assert json.dumps(f_report) == json.dumps(e_report)


def test_prune_and_add_counts_match_the_reference() -> None:
    """The merge's helpers: Counter.update, and a prune to the CAP // 2 largest counts
    (ties by key) in the order of `sorted(items, key=(-count, key))`."""
    from collections import Counter

    from postharden.logs import analyze

    rng = random.Random(11)
    for _ in range(20):
        mine = Counter(
            {f"k{rng.randrange(3 * analyze.CAP)}": rng.randrange(5) for _ in range(60_000)}
        )
        theirs = Counter(
            {f"k{rng.randrange(3 * analyze.CAP)}": rng.randrange(-1, 4) for _ in range(500)}
        )
        theirs["big"] = 2**80
        ref = Counter(mine)
        ref.update(theirs)
        analyze.add_counts(mine, theirs)
        assert list(mine.items()) == list(ref.items())  # values and key order
        keep = sorted(ref.items(), key=lambda kv: (-kv[1], kv[0]))[: analyze.CAP // 2]
        analyze.prune(mine)
        assert list(mine.items()) == keep


@pytest.mark.parametrize("jobs", [1, 2])
def test_pruned_tables_across_blocks_and_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """Tables over the cap are pruned where --exact prunes them (inside a block, when a
    block is merged into its range, when a range is merged): fast == exact, and the same
    report with one process or a pool (the ranges depend on the file size only)."""
    from postharden.logs import analyze

    for module in (analyze, fastscan, cscan):
        monkeypatch.setattr(module, "CAP", 300)
    monkeypatch.setattr(scan, "SMALL", 0)
    rng = random.Random(4)
    start = time.mktime((2025, 3, 1, 10, 0, 0, 0, 0, -1))
    lines = []
    for i, ts in enumerate(_stamps(start, 6000, 0.7)):
        ip = f"10.{rng.randrange(4)}.{rng.randrange(40)}.{rng.randrange(1, 20)}"
        user = f"user{rng.randrange(400)}"
        if i % 3 == 0:
            lines.append(
                f"{ts} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[{ip}]: 554 5.7.1 "
                f"<v@o.test>: Relay access denied; from=<a@b.test> to=<v@o.test> proto=ESMTP "
                "helo=<h>"
            )
        elif i % 3 == 1:
            lines.append(
                f"{ts} mx postfix/smtpd[1]: ABCDEF{i:04X}: client=c[{ip}], sasl_method=PLAIN, "
                f"sasl_username={user}"
            )
        else:
            lines.append(
                f"{ts} mx postfix/smtpd[1]: warning: b[{ip}]: SASL PLAIN authentication failed: "
                f"(reason unavailable), sasl_username={user}"
            )
    log = tmp_path / "many.log"
    log.write_text("\n".join(lines) + "\n")
    reports = []
    for exact in (False, True):
        for block in (16 * 1024, 64 * 1024):
            tally, _s = analyze_paths([str(log)], jobs=jobs, exact=exact, block=block)
            assert len(tally.login_user_client) <= 300
            reports.append((block, json.dumps(build_report(tally, Thresholds()))))
    assert reports[0] == reports[2] and reports[1] == reports[3]
    one, _s = analyze_paths([str(log)], jobs=1, block=16 * 1024)
    assert json.dumps(build_report(one, Thresholds())) == reports[0][1]


def test_report_does_not_depend_on_key_order(tmp_path: Path) -> None:
    """The fast paths count a table's keys in another order than the exact path (the C
    scanner in the order of a range, the parser's lines after it): the report must be the
    same for any order, ties included (a user's busiest hour is the earliest of ties)."""
    log = tmp_path / "mail.log"
    _bench().generate(log, 400_000, seed=8)
    tally, _s = analyze_paths([str(log)], jobs=1, exact=True)
    hour = 1_740_000_000 // 3600 * 3600
    counts = {hour + 7200: 60, hour: 60, **{hour + i * 3600: 1 for i in (1, 3, 4, 5, 6)}}
    for h, n in counts.items():  # a tie, the later hour first
        tally.login_user_hour[f"spiky\0{h}"] = n
    tally.login_user_client["spiky\x00192.0.2.1"] = sum(counts.values())
    th = Thresholds(volume_min=10)
    report = build_report(tally, th)
    spikes = [a for a in report["alerts"] if a["kind"] == "volume_spike"]
    assert [a["subject"] for a in spikes] == ["spiky"]
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour)) in spikes[0]["detail"]
    want = json.dumps(report)
    rng = random.Random(2)
    for _ in range(3):
        for f in dataclasses.fields(tally):
            v = getattr(tally, f.name)
            if isinstance(v, dict) and f.name != "hourly":
                items = list(v.items())
                rng.shuffle(items)
                v.clear()
                dict.update(v, items)
        assert json.dumps(build_report(tally, th)) == want


def test_largest_and_users_of_the_report() -> None:
    """The report's top-n lists are the first n of the table sorted by count (descending)
    then key, ties at the cut included; every user's alerts count, while sasl_logins lists
    the first max(top, 50) users."""
    from collections import Counter

    from postharden.logs import analyze

    rng = random.Random(12)
    for size in (0, 1, 5, 40, 3000):
        table = Counter(
            {f"k{rng.randrange(10 * size + 1)}": rng.randrange(1, 5) for _ in range(size)}
        )
        for n in (0, 1, 3, 10, size + 2):
            want = sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
            assert analyze._largest(table, n) == want
    tally = Tally()
    hour = 1_740_000_000 // 3600 * 3600
    for u in range(120):
        for i in range(1 + u % 5):  # users 4, 9, ... log in from 5 networks
            tally.login_user_client[f"user{u:03}\x0010.{i}.0.1"] = 1 + u // 40
        tally.login_user_hour[f"user{u:03}\0{hour}"] = 1 + u % 5
    report = build_report(tally, Thresholds(top=10))
    order = sorted(range(120), key=lambda u: (-(1 + u % 5) * (1 + u // 40), u))
    names = [f"user{u:03}" for u in order]
    assert [row["user"] for row in report["sasl_logins"]["by_user"]] == names[:50]
    compromised = [a["subject"] for a in report["alerts"] if a["kind"] == "compromised_account"]
    assert compromised == [f"user{u:03}" for u in order if u % 5 >= 3]  # listed or not
    assert set(compromised) - set(names[:50])
