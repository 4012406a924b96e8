"""Alert thresholds and sliding-window lengths, defaults overridable by a TOML/JSON file."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from postharden.logs.errors import LogError


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Each alert kind fires when its count reaches the threshold within `window` seconds
    (`watch`), or over the whole period (`logs`)."""

    brute_force: int = 10  # SASL failures from one client address
    relay_denied: int = 5  # relay-access-denied rejects for one client
    compromised_networks: int = 4  # distinct client networks (/24, /64) one SASL user used
    volume_factor: float = 10.0  # a user's busiest hour vs. its median hour...
    volume_min: int = 50  # ...and at least this many messages in that hour
    policy_outage: int = 1  # policy-service failures (`problem talking to server`, 4.3.5)
    tls_errors: int = 100
    fatal: int = 1  # fatal and panic lines
    window: int = 3600  # seconds: sliding window of `watch`
    top: int = 10  # rows in top-N lists


def load_thresholds(path: Path | None) -> Thresholds:
    if path is None:
        return Thresholds()
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise LogError(f"cannot read thresholds: {error.strerror}", location=str(path)) from None
    try:
        data = json.loads(raw) if raw.lstrip()[:1] == b"{" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as error:
        raise LogError(f"not valid TOML or JSON: {error}", location=str(path)) from None
    if not isinstance(data, dict):
        raise LogError("expected a table of thresholds", location=str(path))
    known = {f.name: f.type for f in dataclasses.fields(Thresholds)}
    values: dict[str, int | float] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise LogError(
                f"unknown threshold {key!r} (known: {', '.join(known)})", location=str(path)
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise LogError(f"threshold {key!r} must be a non-negative number", location=str(path))
        values[name] = value if name == "volume_factor" else int(value)
    return Thresholds(**values)  # type: ignore[arg-type]
