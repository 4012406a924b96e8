"""Ask a policy service (SMTPD_POLICY_README) whether it answers, before Postfix depends on it.

A `check_policy_service` that does not answer turns every delivery into
`451 4.3.5 Server configuration problem`. So before greylisting goes into a plan, we speak
the policy delegation protocol to the service: one request of `name=value` lines ended by
an empty line; a live service answers `action=...` and an empty line.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from postharden.harden.errors import HardenError

DEFAULT_POLICY = "inet:127.0.0.1:10030"
PROBE_TIMEOUT = 5.0


class PolicyServiceError(HardenError):
    """The policy service does not answer the policy delegation protocol."""


@dataclass(frozen=True)
class PolicyAnswer:
    address: str
    action: str
    seconds: float


def _request() -> bytes:
    attributes = {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "protocol_name": "ESMTP",
        "client_address": "192.0.2.1",
        "client_name": "probe.postharden.invalid",
        "reverse_client_name": "probe.postharden.invalid",
        "helo_name": "probe.postharden.invalid",
        "sender": "postharden-probe@postharden.invalid",
        "recipient": "postmaster@postharden.invalid",
        "recipient_count": "0",
        "queue_id": "",
        "instance": f"postharden.{int(time.time())}",
        "size": "0",
        "etrn_domain": "",
        "stress": "",
        "sasl_method": "",
        "sasl_username": "",
        "sasl_sender": "",
        "ccert_subject": "",
        "ccert_issuer": "",
        "ccert_fingerprint": "",
        "encryption_protocol": "",
        "encryption_cipher": "",
        "encryption_keysize": "0",
    }
    return "".join(f"{k}={v}\n" for k, v in attributes.items()).encode() + b"\n"


def parse_address(address: str) -> tuple[str, int]:
    """`inet:HOST:PORT` (or `HOST:PORT`) -> (host, port)."""
    text = address.removeprefix("inet:")
    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PolicyServiceError(f"not a policy service address: {address!r} (want inet:HOST:PORT)")
    return host, int(port)


def probe_policy_service(address: str, timeout: float = PROBE_TIMEOUT) -> PolicyAnswer:
    """Send one policy request; PolicyServiceError unless an `action=` answer comes back."""
    host, port = parse_address(address)
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            connection.sendall(_request())
            received = b""
            while b"\n\n" not in received and len(received) < 65536:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                received += chunk
    except TimeoutError:
        raise PolicyServiceError(
            f"the policy service {address} did not answer within {timeout:.0f}s; "
            "with it in the restrictions every delivery would get 451 4.3.5"
        ) from None
    except OSError as error:
        raise PolicyServiceError(
            f"the policy service {address} is not reachable ({error.strerror or error}); "
            "with it in the restrictions every delivery would get 451 4.3.5"
        ) from None
    for line in received.decode(errors="replace").splitlines():
        if line.startswith("action="):
            return PolicyAnswer(
                f"inet:{host}:{port}", line.removeprefix("action="), time.monotonic() - started
            )
    shown = received[:80].decode(errors="replace") or "nothing"
    raise PolicyServiceError(
        f"{address} does not speak the policy delegation protocol (answered {shown!r})"
    )
