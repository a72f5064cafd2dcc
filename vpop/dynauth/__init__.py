"""Dynamic authorization (RFC 5176), vpop as the client: Disconnect-Request and
CoA-Request toward a NAS, built and judged without I/O.

- `request.py`: a live session's facts and an action (Disconnect, or a CoA with
  changes in vpop's own terms) to the request's attributes, per NAS type, from the
  templates in vpop/templates/dynauth/ and the reply templates; the datagram.
- `result.py`: the NAS's answer to a Result (ACK, NAK with its Error-Cause in words,
  timeout), and the Error-Cause table of RFC 5176 §3.6.
- `session.py`: which NAS client a session belongs to, and the rule that decides
  between a CoA in place and a Disconnect when a subscriber's choice changes.

The shell that sends and waits is vpop/server/dynauth.py.
"""
