"""Phone numbers normalised to E.164 with `phonenumbers`: how contacts are matched to leads.

Shared by the leads projector (which indexes each lead's number) and the application (which
matches an inbound message's sender). Providers send numbers as `+5511…`, `5511…` (WhatsApp
`wa_id`), `whatsapp:+5511…` (Twilio) or `5511…@c.us` (WhatsApp Web bridges).
"""

from __future__ import annotations

import phonenumbers

from domain.privacy import ERASED

PREFIXES = ("whatsapp:", "tel:", "sip:")


def whatsapp_id(wa_id: str) -> str:
    """A WhatsApp id's digits as a dialable international number.

    Meta keeps the ids of accounts registered before a numbering change: Brazilian mobiles
    without the ninth digit (55 + area + 8 digits starting 6-9) and Mexican mobiles with the
    old `1` after 52. Both are rewritten to today's number so they match the lead's phone.
    """
    digits = "".join(c for c in wa_id if c.isdigit())
    if len(digits) == 12 and digits.startswith("55") and digits[4] in "6789":
        return digits[:4] + "9" + digits[4:]
    if len(digits) == 13 and digits.startswith("521"):
        return "52" + digits[3:]
    return digits


def e164(raw: str | None, region: str | None = None) -> str | None:
    """The number in E.164 (`+5511987654321`), or None if it is not a valid phone number.

    A number without a country code is read in `region` (ISO 3166 code) when given; otherwise
    its digits are tried as an international number (WhatsApp ids have no `+`). An erased
    number (`domain.privacy.ERASED`) is no number: a rebuild after an erasure reads it so.
    """
    if not raw or raw == ERASED:
        return None
    text = raw.strip()
    for prefix in PREFIXES:
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    text = text.split("@", 1)[0]
    if len(text) > 40:
        return None
    candidates = [text]
    if not text.startswith("+"):
        if text.startswith("00"):
            candidates = ["+" + text[2:]]
        elif region is None:
            candidates = ["+" + whatsapp_id(text)]
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None
