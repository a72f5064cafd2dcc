"""Write accounting records to radacct; the caller commits (group commit in the shell)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vpop.accounting.records import AcctRecord
from vpop.store.accounting_models import RadAcct


def _when(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def apply_record(session: Session, record: AcctRecord) -> None:
    """Idempotent per record: a retransmission or a replay leaves the same row."""
    when = _when(record.event_time)
    if record.status in ("on", "off"):
        # RFC 2866 §5.1: the NAS restarted; whatever it had open is over.
        session.execute(update(RadAcct)
                        .where(RadAcct.nas_address == record.nas_address,
                               RadAcct.status == "open")
                        .values(status="closed", stop_time=when,
                                terminate_cause="NAS-Reboot"))
        return
    row = session.scalars(select(RadAcct).where(RadAcct.unique_id == record.unique_id)).first()
    if row is None:
        row = RadAcct(unique_id=record.unique_id, acct_session_id=record.session_id,
                      username=record.username, nas_address=record.nas_address, status="open",
                      session_time=0, input_octets=0, output_octets=0)
        session.add(row)
    row.nas_port = record.nas_port or row.nas_port
    row.calling_station_id = record.calling_station_id or row.calling_station_id
    row.framed_ip = record.framed_ip or row.framed_ip
    if record.status == "start":
        row.start_time = row.start_time or when
    else:
        if row.start_time is None:  # Stop or Interim before (or without) its Start
            row.start_time = _when(record.event_time - record.session_time)
        # Counters only grow within a session: an older, reordered record changes nothing.
        if record.session_time >= (row.session_time or 0):
            row.session_time = record.session_time
            row.input_octets = max(row.input_octets or 0, record.input_octets)
            row.output_octets = max(row.output_octets or 0, record.output_octets)
            row.update_time = when
    if record.status == "stop":
        row.status = "closed"
        row.stop_time = when
        row.terminate_cause = record.terminate_cause
