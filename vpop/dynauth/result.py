"""A NAS's answer to a CoA-Request or Disconnect-Request, as vpop reports it."""

from __future__ import annotations

from dataclasses import dataclass

from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.dictionary import Dictionary

ACK, NAK, TIMEOUT, ERROR = "ack", "nak", "timeout", "error"
OUTCOMES = (ACK, NAK, TIMEOUT, ERROR)

# RFC 5176 §3.6: Error-Cause values, in the words of the shipped dictionary
# (radius-dictionaries/dictionary.rfc5176), so the CLI and the answer's lines agree.
ERROR_CAUSES: dict[int, str] = {
    201: "Residual-Context-Removed",
    202: "Invalid-EAP-Packet",
    401: "Unsupported-Attribute",
    402: "Missing-Attribute",
    403: "NAS-Identification-Mismatch",
    404: "Invalid-Request",
    405: "Unsupported-Service",
    406: "Unsupported-Extension",
    407: "Invalid-Attribute-Value",
    501: "Administratively-Prohibited",
    502: "Proxy-Request-Not-Routable",
    503: "Session-Context-Not-Found",
    504: "Session-Context-Not-Removable",
    505: "Proxy-Processing-Error",
    506: "Resources-Unavailable",
    507: "Request-Initiated",
    508: "Multiple-Session-Selection-Unsupported",
}


def error_cause_words(value: int | None) -> str:
    """"Session-Context-Not-Found" for 503; a value RFC 5176 does not list says so."""
    if value is None:
        return ""
    words = ERROR_CAUSES.get(value)
    if words:
        return words
    if 200 <= value < 300:
        return "unlisted success cause"
    if 400 <= value < 500:
        return "unlisted client error"
    if 500 <= value < 600:
        return "unlisted NAS error"
    return "not an RFC 5176 value"


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What became of one request: `outcome` is ack, nak, timeout or error (vpop could
    not send it: no NAS endpoint, nothing to change, a socket error); `answer` the
    reply's attributes as `Name = value` lines; `tries` how often it was sent."""

    outcome: str
    error_cause: int | None = None
    reason: str = ""
    answer: tuple[tuple[str, str], ...] = ()
    tries: int = 0
    endpoint: str = ""  # host:port the request went to

    @property
    def error_words(self) -> str:
        return error_cause_words(self.error_cause)

    @property
    def ok(self) -> bool:
        return self.outcome == ACK

    def describe(self) -> str:
        """One line: "ACK", "NAK, Error-Cause 503 (Session-Context-Not-Found)",
        "timeout: no answer from 192.0.2.1:3799 after 3 tries", "error: ..."."""
        if self.outcome == ACK:
            text = "ACK"
            if self.error_cause is not None:  # 201/202 may come with an ACK
                text += f", Error-Cause {self.error_cause} ({self.error_words})"
            return text
        if self.outcome == NAK:
            if self.error_cause is None:
                return "NAK without Error-Cause"
            return f"NAK, Error-Cause {self.error_cause} ({self.error_words})"
        if self.outcome == TIMEOUT:
            return (f"timeout: no answer from {self.endpoint} after {self.tries} "
                    f"{'try' if self.tries == 1 else 'tries'}")
        return f"error: {self.reason}"


def from_answer(packet: codec.Packet, dictionary: Dictionary, *, tries: int,
                endpoint: str) -> Result:
    """A verified reply (the exchange checked its authenticators and that its code
    answers the request) to a Result."""
    outcome = ACK if packet.code in (codec.COA_ACK, codec.DISCONNECT_ACK) else NAK
    raw = packet.first(A.ERROR_CAUSE)
    cause = int.from_bytes(raw, "big") if raw is not None and len(raw) == 4 else None
    return Result(outcome=outcome, error_cause=cause, reason=error_cause_words(cause),
                  answer=tuple(answer_pairs(packet, dictionary)), tries=tries,
                  endpoint=endpoint)


def timed_out(*, tries: int, endpoint: str) -> Result:
    return Result(outcome=TIMEOUT, reason=f"no answer after {tries} "
                  f"{'try' if tries == 1 else 'tries'}", tries=tries, endpoint=endpoint)


def failed(reason: str, *, endpoint: str = "", tries: int = 0) -> Result:
    return Result(outcome=ERROR, reason=reason, endpoint=endpoint, tries=tries)


def answer_pairs(packet: codec.Packet, dictionary: Dictionary) -> list[tuple[str, str]]:
    """The reply's attributes as (name, value) text, for the audit and the CLI; the
    Message-Authenticator is left out (it is checked, not shown)."""
    pairs = []
    for key, values in packet.attrs.items():
        if key == A.MESSAGE_AUTHENTICATOR:
            continue
        definition = dictionary.by_key.get(key)
        for raw in values:
            pairs.append(_shown(definition, key, raw, dictionary))
    return pairs


def _shown(definition, key, raw: bytes, dictionary: Dictionary) -> tuple[str, str]:
    if definition is None:
        name = f"Attr-{key[0]}-{key[1]}" if isinstance(key, tuple) else f"Attr-{key}"
        return name, "0x" + raw.hex()
    if raw in definition.value_names:
        return definition.name, definition.value_names[raw]
    try:
        value = dictionary.decode_value(definition, raw)
    except Exception:
        return definition.name, "0x" + raw.hex()
    if isinstance(value, bytes):
        value = "0x" + value.hex()
    return definition.name, str(value)
