"""postharden: read, explain, audit, harden, verify and watch Postfix mail servers."""

__version__ = "0.1.0"
