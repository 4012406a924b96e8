"""Lines every mail server must accept: rules that act on them would refuse real mail.

Content rules are judged by asking the real Postfix (`postmap -q`) what each of these lines
gets from the table; a REJECT or DISCARD on one of them stops legitimate mail.
"""

from __future__ import annotations

# Header lines as header_checks and mime_header_checks see them (one logical header).
LEGITIMATE_HEADERS: tuple[str, ...] = (
    "Content-Type: text/html; charset=UTF-8",
    "Content-Type: text/html",
    "Content-Type: text/plain; charset=utf-8",
    'Content-Type: multipart/alternative; boundary="b1"',
    'Content-Type: multipart/mixed; boundary="b2"',
    'Content-Type: application/pdf; name="invoice.pdf"',
    'Content-Disposition: attachment; filename="report.pdf"',
    'Content-Type: image/png; name="logo.png"',
    "Content-Transfer-Encoding: base64",
    "Content-Transfer-Encoding: quoted-printable",
    "MIME-Version: 1.0",
    "Subject: Meeting tomorrow",
    "From: Alice Example <alice@example.org>",
    "To: bob@example.com",
    "Received: from mail.example.org (mail.example.org [192.0.2.10]) by mx.example.com",
)
# Body lines as body_checks sees them.
LEGITIMATE_BODY: tuple[str, ...] = (
    "<html>",
    '<html><head><meta charset="utf-8"></head><body>',
    "<p>Hello Bob,</p>",
    "Hello Bob,",
    "Please find the invoice attached.",
    "--b1",
)
REFUSING_ACTIONS = ("REJECT", "DISCARD")


def refuses(action: str) -> bool:
    """True when a table result refuses the message (REJECT, DISCARD, 5xx/4xx text)."""
    word = action.strip().split(None, 1)[0].upper() if action.strip() else ""
    return word in REFUSING_ACTIONS or (len(word) == 3 and word.isdigit() and word[0] in "45")
