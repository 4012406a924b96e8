"""What the sandbox must rewrite to run beside production does not change a decision."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from postharden.config import load_config
from postharden.sandbox import Sandbox

pytestmark = [pytest.mark.postfix, pytest.mark.root]

Factory = Callable[..., Sandbox]

# mynetworks is not set: Postfix computes it (style host) from inet_interfaces, which the
# sandbox rewrites to 127.0.0.1.
UNSET = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydestination = $myhostname, localhost
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
"""


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_computed_mynetworks_of_production_is_kept(sandbox_factory: Factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "main.cf").write_text(UNSET)
    (tmp_path / "master.cf").write_text("smtp inet n - n - - smtpd\n")
    production = load_config(tmp_path).main.expanded("mynetworks").split()
    sandbox = sandbox_factory(UNSET)
    own = [entry for entry in production if not entry.startswith(("127.", "["))]
    if not own:
        pytest.skip("this machine has no non-loopback IPv4 address to trust")
    address = own[0].split("/")[0]
    # Production trusts its own public address; so must the sandbox (no 127.0.0.1-only trust).
    trusted = sandbox.query(client_addr=address, recipient="someone@example.org")
    assert (trusted.command, trusted.code) == ("rcpt", 250), trusted.text
    stranger = sandbox.query(client_addr="203.0.113.9", recipient="someone@example.org")
    assert (stranger.command, stranger.code) == ("rcpt", 554), stranger.text


def test_ipv6_client_addresses_can_be_asked(sandbox_factory: Factory) -> None:
    if not _has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    sandbox = sandbox_factory(
        UNSET.replace(
            "local_recipient_maps =\n",
            "local_recipient_maps =\nmynetworks = 127.0.0.0/8 [2001:db8:1::]/48\n",
        )
    )
    inside = sandbox.query(client_addr="2001:db8:1::9", recipient="someone@example.org")
    assert (inside.command, inside.code) == ("rcpt", 250), inside.text
    outside = sandbox.query(client_addr="2001:db8:2::9", recipient="someone@example.org")
    assert (outside.command, outside.code) == ("rcpt", 554), outside.text
