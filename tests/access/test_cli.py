"""`postharden explain` and `postharden relay` from the command line; JSON vs schemas."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from postharden.cli import main

MAIN = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydestination = $myhostname, example.com
alias_maps =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks,
    check_client_access cidr:$config_directory/clients.cidr,
    reject_unauth_destination
smtpd_recipient_restrictions = reject_rbl_client zen.example
"""
MASTER = """\
smtp inet n - n - - smtpd
submission inet n - n - - smtpd
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
broken inet n - n - - smtpd
  -o smtpd_relay_restrictions=permit,reject_unauth_destination
"""


def schema(name: str) -> dict[str, object]:
    text = resources.files("postharden.schemas").joinpath(f"{name}.schema.json").read_text()
    loaded: dict[str, object] = json.loads(text)
    return loaded


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "main.cf").write_text(MAIN)
    (tmp_path / "master.cf").write_text(MASTER)
    (tmp_path / "clients.cidr").write_text("198.51.100.0/24 OK\n")
    return tmp_path


def test_explain_single_text_and_json(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "explain",
        "--config-dir",
        str(config_dir),
        "--client-address",
        "198.51.100.9",
        "--helo",
        "mail.example.net",
        "--sender",
        "a@example.org",
        "--recipient",
        "x@foreign.example",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "RCPT -> 250" in text and "clients.cidr:1" in text and "[main.cf:6]" in text
    assert "depends on an outside answer" in text
    assert main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, schema("explain"))
    assert (data["command"], data["code"], data["decision"]) == ("rcpt", 250, "accept")
    assert data["outside"][0]["if_yes"]["code"] == 554


def test_explain_batch(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        {
            "service": "smtp",
            "client_address": "203.0.113.5",
            "client_name": None,
            "helo": "h.example.net",
            "sasl_user": None,
            "sender": "a@example.org",
            "recipient": "x@foreign.example",
        },
        {
            "service": "submission",
            "client_address": "203.0.113.5",
            "client_name": None,
            "helo": "h.example.net",
            "sasl_user": "alice",
            "sender": "a@example.org",
            "recipient": "x@foreign.example",
        },
        {
            "service": "broken",
            "client_address": "203.0.113.5",
            "client_name": None,
            "helo": None,
            "sasl_user": None,
            "sender": "",
            "recipient": "x@foreign.example",
        },
    ]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    assert main(["explain", "--config-dir", str(config_dir), "--cases", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    answers = [json.loads(line) for line in lines]
    for answer in answers:
        jsonschema.validate(answer, schema("explain"))
    assert [(a["command"], a["code"], a["decision"]) for a in answers] == [
        ("rcpt", 554, "reject"),
        ("rcpt", 250, "accept"),
        ("connect", 0, "unavailable"),
    ]


def test_explain_bad_input(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"client_address": "1.2.3.4", "recipient": "a@b"}\n{not json\n')
    assert main(["explain", "--config-dir", str(config_dir), "--cases", str(path)]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    assert (
        main(
            [
                "explain",
                "--config-dir",
                str(config_dir),
                "--client-address",
                "nope",
                "--sender",
                "",
                "--recipient",
                "a@b",
            ]
        )
        == 2
    )
    assert "not an IP address" in capsys.readouterr().err
    assert (
        main(
            [
                "explain",
                "--config-dir",
                str(config_dir),
                "--service",
                "nosuch",
                "--client-address",
                "1.2.3.4",
                "--sender",
                "",
                "--recipient",
                "a@b",
            ]
        )
        == 2
    )


def test_relay_text_and_json(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relay", "--config-dir", str(config_dir)]) == 1
    text = capsys.readouterr().out
    assert "smtp/inet" in text and "OPEN" in text and "unavailable" in text
    assert main(["relay", "--config-dir", str(config_dir), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, schema("relay"))
    verdicts = {s["service"]: s["verdict"] for s in data["services"]}
    assert verdicts == {
        "smtp/inet": "open",
        "submission/inet": "closed",
        "broken/inet": "unavailable",
    }
    smtp = data["services"][0]
    assert smtp["path"]["origin"] == "main.cf:6"
    assert smtp["path"]["example"]["client_address"].startswith("198.51.100.")
    assert main(["relay", "--config-dir", str(config_dir), "--service", "submission"]) == 0
