"""`make bench`: failover time, false failovers and footprint, failoverd beside keepalived.

Runs in one process on the network-namespace lab (`failoverd.lab`): each
system and profile gets a lab of its own (primary, standby, witness, lb,
client), is measured, and is torn down before the next. See
`python -m bench --help`, docs/profiles.md and bench/RESULTS.md.
"""
