#!/usr/bin/env python3
"""The portal's main pages over a large accounting data set: each page's server time.

Loads --records accounting records (10 million by default) straight into the tables
(bench/portal_data.py: what the ledger would hold after 30 days on 200 NASes for 20
ISPs), then asks each main page of the admin and of an ISP operator, and the JSON API's
main calls, through the Flask test client (no network), --requests times after one
warm-up, and prints the median, fastest and slowest in milliseconds. The goal is under
300 ms for each.

    python bench/portal_pages.py --db sqlite:////var/tmp/portal10m.db
    python bench/portal_pages.py --db postgresql://postgres@127.0.0.1/portal10m
    python bench/portal_pages.py --db sqlite:////var/tmp/portal10m.db --reuse  # pages only
    python bench/portal_pages.py --db sqlite:////var/tmp/portal1m.db --records 1000000

The database is emptied and loaded again unless --reuse is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import statistics
import sys
import time

from sqlalchemy import select, text

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from portal_data import Shape, generate  # noqa: E402

from vpop.config import PortalSettings, Settings  # noqa: E402
from vpop.store import api_tokens, schema  # noqa: E402
from vpop.store.accounting_models import Lease, RadAcct  # noqa: E402
from vpop.store.engine import make_engine, make_sessionmaker, safe_url  # noqa: E402

OPERATOR_ISP = "isp-03"


def empty(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            for (name,) in connection.execute(text(
                    "SELECT name FROM sqlite_master WHERE type='table'")).all():
                connection.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    engine.dispose()


def accounts(sessionmaker, now: dt.datetime) -> str:
    """The admin and the ISPs' operators (as `vpop init --demo` makes them); an admin
    API token."""
    from vpop.portal.accounts import load_demo_accounts
    with sessionmaker() as session:
        load_demo_accounts(session, now)
        _, token = api_tokens.create(session, isp=None, name="bench", created_by="bench",
                                     now=now)
        session.commit()
    return token


def pages(sessionmaker, shape: Shape) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(admin's pages, operator's pages): (what, path)."""
    with sessionmaker() as session:
        lease = session.scalar(select(Lease.id).where(Lease.isp == OPERATOR_ISP))
        newest = session.scalar(select(RadAcct.id).order_by(RadAcct.id.desc()).limit(1))
        user = session.scalar(select(RadAcct.username).where(RadAcct.id == newest))
        deep = session.execute(select(RadAcct.start_time, RadAcct.id).where(
            RadAcct.isp == OPERATOR_ISP).order_by(RadAcct.start_time, RadAcct.id)
            .offset(100).limit(1)).first()
    cursor = f"{int(deep[0].timestamp())}.{deep[1]}" if deep else ""
    month = f"from=2026-03-01&to=2026-03-{min(shape.days, 30) + 1:02d}"
    admin = [
        ("admin: start page", "/admin/"),
        ("ISP directory", "/isps/"),
        ("leases with sessions online now", "/usage/leases"),
        ("lease utilization, last day by 5 min", f"/usage/leases/{lease}"),
        ("lease utilization, month by hour", f"/usage/leases/{lease}?{month}&grain=hour"),
        ("utilization per ISP, month by day", f"/usage/reports?by=isp&{month}&grain=day"),
        ("utilization per NAS, last day by hour", "/usage/reports?by=nas&grain=hour"),
        ("utilization per lease, week by hour",
         "/usage/reports?by=lease&from=2026-03-22&to=2026-03-29&grain=hour"),
        ("sessions, newest", "/usage/sessions"),
        ("sessions online now", "/usage/sessions?status=open"),
        ("sessions of one user", f"/usage/sessions?user={user}"),
        ("sessions of one ISP, oldest page", f"/usage/sessions?isp={OPERATOR_ISP}&after={cursor}"),
        ("sessions of one NAS, closed, one day",
         "/usage/sessions?nas=10.0.0.4&status=closed&from=2026-03-15&to=2026-03-16"),
        ("one session with its records", f"/usage/sessions/{newest}"),
        ("audit log", "/usage/audit"),
        ("API: sessions", "/api/v1/sessions?limit=100"),
        ("API: lease utilization, day by 5 min", f"/api/v1/leases/{lease}/utilization"),
        ("API: utilization per NAS, month by day", f"/api/v1/utilization?by=nas&{month}&grain=day"),
    ]
    operator = [
        ("operator: start page", "/isp/"),
        ("operator: lease utilization, last day", f"/usage/leases/{lease}"),
        ("operator: sessions", "/usage/sessions"),
        ("operator: utilization per NAS, week by hour",
         "/usage/reports?by=nas&from=2026-03-22&to=2026-03-29&grain=hour"),
        ("operator: servers and LNS", "/isp/settings"),
    ]
    return admin, operator


def log_in(client, name: str, password: str) -> None:
    reply = client.post("/login", data={"kind": "staff", "name": name, "password": password})
    if reply.status_code != 302:
        raise SystemExit(f"login as {name} failed: {reply.status_code}")


def measure(client, path: str, requests: int, headers: dict) -> tuple[list[float], int, int]:
    """Milliseconds per request (after one warm-up), the status and the size."""
    reply = client.get(path, headers=headers)
    reply.get_data()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        reply = client.get(path, headers=headers)
        body = reply.get_data()
        times.append((time.perf_counter() - started) * 1000)
    return times, reply.status_code, len(body)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="sqlite:////path or postgresql://... URL")
    parser.add_argument("--records", type=int, default=10_000_000,
                        help="accounting records to load (default 10,000,000)")
    parser.add_argument("--days", type=int, default=30, help="days they span (default 30)")
    parser.add_argument("--requests", type=int, default=7, help="requests per page (default 7)")
    parser.add_argument("--reuse", action="store_true", help="measure the data set as it is")
    args = parser.parse_args(argv)
    shape = Shape(records=args.records, days=args.days)
    now = dt.datetime.fromtimestamp(shape.now, dt.timezone.utc)
    if not args.reuse:
        empty(args.db)
        schema.upgrade(args.db)
    engine = make_engine(args.db)
    sessionmaker = make_sessionmaker(engine)
    if not args.reuse:
        print(f"loading about {args.records:,} records into {safe_url(args.db)}", flush=True)
        counts = generate(engine, sessionmaker, shape)
        print(", ".join(f"{name}: {count:,}" for name, count in counts.items()), flush=True)
    token = accounts(sessionmaker, now)
    engine.dispose()

    from vpop.portal.app import create_app
    settings = Settings(database=dataclasses.replace(Settings().database, url=args.db),
                        portal=PortalSettings(secret_key="bench-" + "k" * 40))
    app = create_app(settings, clock=lambda: now, flask_config={
        "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False})
    with make_sessionmaker(make_engine(args.db))() as session:
        records = session.scalar(text("SELECT count(*) FROM acct_record"))
    admin_pages, operator_pages = pages(make_sessionmaker(make_engine(args.db)), shape)
    print(f"\n| page ({records:,} accounting records, {make_engine(args.db).dialect.name}) "
          "| median ms | fastest | slowest | status | KiB |")
    print("|---|---:|---:|---:|---:|---:|")
    slow = []
    for who, login, listed in (("admin", ("admin", "admin-pass"), admin_pages),
                               ("operator", (f"{OPERATOR_ISP}-operator",
                                             f"{OPERATOR_ISP}-operator-pass"), operator_pages)):
        client = app.test_client()
        log_in(client, *login)
        for name, path in listed:
            headers = {"Authorization": f"Bearer {token}"} if path.startswith("/api/") else {}
            times, status, size = measure(client, path, args.requests, headers)
            median = statistics.median(times)
            if median >= 300 or status != 200:
                slow.append(name)
            print(f"| {name} | {median:.0f} | {min(times):.0f} | {max(times):.0f} | {status} "
                  f"| {size / 1024:.0f} |", flush=True)
    print(f"\n{len(slow)} of {len(admin_pages) + len(operator_pages)} pages at or above 300 ms "
          f"or not 200{': ' + ', '.join(slow) if slow else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
