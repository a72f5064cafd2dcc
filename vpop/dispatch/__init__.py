"""The one place that composes the sections from the domain stages: what runs for each
kind of packet (docs/architecture.md), the receiver that turns a datagram into actions
for the shell, and the dependencies the stages are given."""
