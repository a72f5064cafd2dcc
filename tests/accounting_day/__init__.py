"""A generated day of RADIUS accounting and the figures it must give.

`generator` makes one seeded UTC day of Accounting-Requests from four NASes (with the
ISPs and leases to import), and arrival orders to replay it in; `figures` computes
what `vpop report` must say about it from the packets alone, never with vpop's own
accounting code, so the two can disagree. tests/e2e/test_accounting_day.py replays
the day into a real server and compares.
"""
