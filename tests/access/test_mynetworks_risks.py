"""mynetworks risks: public networks are flagged, the server's own addresses are not."""

from __future__ import annotations

from pathlib import Path

from postharden.access import analyze_relay
from postharden.config import load_config
from postharden.config.defaults import machine_addresses


def risks(tmp_path: Path, main_cf: str) -> list[str]:
    (tmp_path / "main.cf").write_text(main_cf)
    (tmp_path / "master.cf").write_text("smtp inet n - n - - smtpd\n")
    report = analyze_relay(load_config(tmp_path))
    return [f"{risk.id}: {risk.message}" for s in report.services for risk in s.risks]


def test_default_host_style_trusts_only_this_machine(tmp_path: Path) -> None:
    # compatibility_level >= 2: mynetworks_style = host -> this machine's own /32s.
    found = risks(tmp_path, "compatibility_level = 3.6\nmyhostname = mx.example.com\n")
    assert not [r for r in found if r.startswith("mynetworks")], found


def test_public_network_is_flagged(tmp_path: Path) -> None:
    found = risks(
        tmp_path,
        "compatibility_level = 3.6\nmyhostname = mx.example.com\n"
        "mynetworks = 127.0.0.0/8, 198.51.100.0/24\n",
    )
    assert any(r.startswith("mynetworks-wide") and "198.51.100.0/24" in r for r in found), found


def test_own_public_address_written_by_hand_is_not_flagged(tmp_path: Path) -> None:
    own = [a.address.ip for a in machine_addresses() if a.address.version == 4]
    public = [a for a in own if not a.is_loopback]
    own_text = f"{public[0]}/32" if public else "127.0.0.1"
    found = risks(
        tmp_path,
        f"compatibility_level = 3.6\nmyhostname = mx.example.com\nmynetworks = {own_text}\n",
    )
    assert not [r for r in found if r.startswith("mynetworks")], found
