"""apply --verify-sandbox / --probe: after writing, ask the real Postfix what it answers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from postharden.sandbox import MINIMAL_MASTER_CF, Sandbox

pytestmark = [pytest.mark.postfix, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "src/postharden/schemas/apply.schema.json").read_text())


def apply(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postharden", "apply", "--config-dir", str(directory),
         "--profile", "baseline", "--yes", "--no-reload", "--format", "json", *extra],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_verify_sandbox_confirms_the_relay_is_closed(tmp_path: Path) -> None:
    target = tmp_path / "postfix"
    shutil.copytree(REPO / "examples" / "weak", target)
    result = apply(target, "--verify-sandbox")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    assert document["problems"] == []
    sandbox_lines = [line for line in document["verified"] if line.startswith("sandbox: ")]
    assert {line.split(":")[1].strip() for line in sandbox_lines} == {"smtp", "10025"}
    assert all("refuses outside relaying" in line for line in sandbox_lines)


OPEN = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydestination = $myhostname, localhost
local_recipient_maps =
mynetworks = 0.0.0.0/0
"""


def test_probe_reports_a_server_that_still_relays(
    sandbox_factory: Callable[..., Sandbox], tmp_path: Path
) -> None:
    # The running server is another instance that trusts everybody: the probe (from
    # 127.0.0.1, which 0.0.0.0/0 includes) gets its relay attempts accepted, and apply
    # must say so and exit 1 although its own write succeeded.
    server = sandbox_factory(OPEN, MINIMAL_MASTER_CF, authorize_xclient=False)
    target = tmp_path / "postfix"
    shutil.copytree(REPO / "examples" / "weak", target)
    result = apply(target, "--probe", f"127.0.0.1:{server.port('smtp')}")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    assert document["changed"]
    assert any("relays mail for an outside client" in p for p in document["problems"])
