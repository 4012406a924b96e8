"""Read a Postfix configuration exactly as Postfix does.

    config = load_config("/etc/postfix")
    config.main.expanded("mynetworks")              # main.cf + defaults
    smtp = config.service("submission/inet")
    ctx = config.effective(smtp)                     # main.cf + that service's -o
    ctx.parameter("smtpd_relay_restrictions")        # Parameter(value, expanded, origin)
    ctx.list_value("smtpd_recipient_restrictions")   # split like Postfix splits lists

Errors the user can cause raise ConfigError (an InputError: one line, exit code 2).
"""

from postharden.config.defaults import Defaults, load_defaults
from postharden.config.errors import ConfigError
from postharden.config.expand import Expansion, ExpansionError, expand, parse_compat_level
from postharden.config.master import Override, Service
from postharden.config.model import (
    Context,
    Definition,
    Origin,
    Parameter,
    PostfixConfig,
    ReadProblem,
    load_config,
    parse_main_cf,
    parse_master_cf,
    split_list,
)
from postharden.config.syntax import normalize_space

__all__ = [
    "ConfigError",
    "Context",
    "Defaults",
    "Definition",
    "Expansion",
    "ExpansionError",
    "Origin",
    "Override",
    "Parameter",
    "PostfixConfig",
    "ReadProblem",
    "Service",
    "expand",
    "load_config",
    "load_defaults",
    "normalize_space",
    "parse_compat_level",
    "parse_main_cf",
    "parse_master_cf",
    "split_list",
]
