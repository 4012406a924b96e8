"""Reader: compression, rotated sets, years, stdin, journalctl, corrupt input; CLI errors."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema

from postharden.logs.reader import YearTracker
from postharden.logs.scan import analyze_paths

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "src/postharden/schemas/logs.schema.json").read_text()
)

REJECT = (
    "{ts} mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from x[{ip}]: 554 5.7.1 <v@o.test>: "
    "Relay access denied; from=<a@b.test> to=<v@o.test> proto=ESMTP helo=<h>\n"
)
SASL = (
    "{ts} mx postfix/smtpd[9]: warning: x[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n"
)


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "postharden", "logs", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def report(*args: str, stdin: bytes | None = None) -> dict[str, Any]:
    proc = cli("--format", "json", *args, stdin=stdin)
    assert proc.returncode in (0, 1), proc.stderr
    r: dict[str, Any] = json.loads(proc.stdout)
    jsonschema.validate(r, SCHEMA)
    return r


def test_year_tracker_crosses_new_year() -> None:
    t = YearTracker(2023, 12)
    assert [t.year_for(m) for m in (12, 12, 1, 12, 1, 2)] == [2023, 2023, 2024, 2023, 2024, 2024]


def test_rotated_set_in_any_order_and_compressed(tmp_path: Path) -> None:
    # mail.log.2.gz (Dec 30), mail.log.1.xz (Dec 31), mail.log (Jan 1): across New Year.
    (tmp_path / "mail.log.2.gz").write_bytes(
        gzip.compress(REJECT.format(ts="Dec 30 10:00:00", ip="192.0.2.1").encode())
    )
    (tmp_path / "mail.log.1.xz").write_bytes(
        lzma.compress(REJECT.format(ts="Dec 31 23:59:59", ip="192.0.2.2").encode())
    )
    (tmp_path / "mail.log.3.bz2").write_bytes(
        bz2.compress(SASL.format(ts="Dec 29 01:00:00", ip="192.0.2.3").encode())
    )
    (tmp_path / "mail.log").write_text(REJECT.format(ts="Jan  1 00:00:01", ip="192.0.2.4"))
    jan = time.mktime((2025, 1, 1, 12, 0, 0, 0, 0, -1))
    for name in ("mail.log.3.bz2", "mail.log.2.gz", "mail.log.1.xz"):
        os.utime(tmp_path / name, (jan - 86400, jan - 86400))
    os.utime(tmp_path / "mail.log", (jan, jan))
    names = ["mail.log", "mail.log.1.xz", "mail.log.3.bz2", "mail.log.2.gz"]
    r = report(*[str(tmp_path / n) for n in names])
    assert r["relay_denied"]["total"] == 3 and r["sasl_failures"]["total"] == 1
    assert [Path(i["name"]).name for i in r["inputs"]] == [
        "mail.log.3.bz2",
        "mail.log.2.gz",
        "mail.log.1.xz",
        "mail.log",
    ]
    assert r["period"]["start"].startswith("2024-12-29")
    assert r["period"]["end"].startswith(("2025-01-01", "2024-12-31"))  # local TZ of the runner
    forced = report("--year", "2019", *[str(tmp_path / n) for n in names])
    assert forced["period"]["start"].startswith("2019-12-2")
    assert forced["period"]["end"] > "2020-01-01" or forced["period"]["end"].startswith(
        "2019-12-31"
    )


def test_stdin_and_journal_formats() -> None:
    short_iso = REJECT.format(ts="2024-05-01T10:00:00+0200", ip="192.0.2.7")
    journal = (
        json.dumps(
            {
                "__REALTIME_TIMESTAMP": "1714550400000000",
                "_HOSTNAME": "mx",
                "SYSLOG_IDENTIFIER": "postfix/smtpd",
                "_PID": "9",
                "MESSAGE": "warning: x[192.0.2.8]: SASL PLAIN authentication failed: ",
            }
        )
        + "\n"
    )
    r = report("-", stdin=(short_iso + journal).encode())
    assert r["relay_denied"]["by_client"] == [{"client": "192.0.2.7", "count": 1}]
    assert r["sasl_failures"]["by_client"] == [{"client": "192.0.2.8", "count": 1}]
    assert r["period"]["start"] == "2024-05-01T08:00:00Z"


def test_corrupt_input_is_counted_not_fatal(tmp_path: Path) -> None:
    rng = random.Random(7)
    good = REJECT.format(ts="2024-05-01T10:00:00Z", ip="192.0.2.9")
    junk = bytes(rng.randrange(256) for _ in range(5000))
    huge = b"2024-05-01T10:00:01Z mx postfix/smtpd[1]: " + b"A" * 1_000_000 + b"\n"
    other = b"2024-05-01T10:00:02Z mx dovecot[5]: imap-login: Login: user=<x>\n"
    log = tmp_path / "mixed.log"
    log.write_bytes(good.encode() + junk + b"\n" + huge + other + good.encode())
    r = report(str(log))
    assert r["relay_denied"]["total"] == 2
    assert r["lines"]["invalid"] >= 2  # the binary junk and the 1 MB line
    assert r["lines"]["other"] >= 1
    # A truncated .gz: read up to the damage, say so, still report.
    data = gzip.compress((good * 2000).encode())
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    proc = cli("--format", "json", str(tmp_path / "cut.gz"))
    assert proc.returncode in (0, 1)
    r = json.loads(proc.stdout)
    assert 0 < r["relay_denied"]["total"] < 2000
    assert "truncated" in r["inputs"][0]["error"]
    assert b"truncated" in proc.stderr and proc.stderr.count(b"\n") == 1


def test_unusable_input_is_one_line_exit_2(tmp_path: Path) -> None:
    for args in (["/nonexistent/mail.log"], [str(tmp_path)], ["--since", "yesterday-ish", "-"]):
        proc = cli(*args, stdin=b"")
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count(b"\n") == 1 and proc.stderr.startswith(b"postharden logs: error:")
        assert b"Traceback" not in proc.stderr


def test_file_shrinking_while_read(tmp_path: Path) -> None:
    log = tmp_path / "shrink.log"
    line = REJECT.format(ts="2024-05-01T10:00:00Z", ip="192.0.2.10")
    log.write_text(line * 400_000)  # ~90 MB: read by workers in blocks

    def truncate() -> None:
        time.sleep(0.05)
        with log.open("r+") as fh:
            fh.truncate(len(line) * 1000)

    t = threading.Thread(target=truncate)
    t.start()
    tally, sources = analyze_paths([str(log)], jobs=2, block=1 << 20)
    t.join()
    assert tally.lines_total <= 400_000
    if tally.lines_total < 400_000:
        assert sources[0].error and "shrank" in sources[0].error


def test_since_until(tmp_path: Path) -> None:
    log = tmp_path / "m.log"
    log.write_text(
        "".join(REJECT.format(ts=f"2024-05-01T{h:02d}:00:00Z", ip="192.0.2.1") for h in range(10))
    )
    r = report("--since", "2024-05-01T03:00:00Z", "--until", "2024-05-01T06:00:00Z", str(log))
    assert r["relay_denied"]["total"] == 3


def test_formats_render(tmp_path: Path) -> None:
    log = tmp_path / "m.log"
    log.write_text(
        "".join(SASL.format(ts=f"2024-05-01T10:{m:02d}:00Z", ip="192.0.2.5") for m in range(12))
    )
    html = cli("--format", "html", str(log))
    assert (
        html.returncode == 1
        and b"<svg" in html.stdout
        and b"http" not in html.stdout.split(b"</style>")[1]
    )
    prom = cli("--format", "prometheus", str(log)).stdout.decode()
    assert "postharden_sasl_failures 12" in prom
    assert 'postharden_alerts{kind="brute_force"} 1' in prom
    text = cli(str(log)).stdout.decode()
    assert "[brute_force] 12 SASL authentication failures from 192.0.2.5" in text


def _dispositions(_: int) -> tuple[Any, Any, Any]:
    import signal

    return (
        signal.getsignal(signal.SIGTERM),
        signal.getsignal(signal.SIGHUP),
        signal.getsignal(signal.SIGINT),
    )


def test_pool_workers_die_on_sigterm_whatever_the_parent_installed() -> None:
    """A parent that turns SIGTERM into SystemExit (the sandbox does) must not pass that to
    the scan's forked workers: Pool.terminate would then wait for a worker unwinding Python
    code, which can block forever on a lock inherited from another thread of the parent."""
    import signal

    from postharden.logs import scan

    def python_handler(signum: int, frame: object) -> None:
        raise SystemExit(1)

    old = signal.signal(signal.SIGTERM, python_handler)
    try:
        with scan._pool(1) as pool:
            got = pool.map(_dispositions, [0])[0]
    finally:
        signal.signal(signal.SIGTERM, old)
    assert got == (signal.SIG_DFL, signal.SIG_DFL, signal.SIG_IGN)
