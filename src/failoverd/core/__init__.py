"""The decisions of failoverd, sans-I/O.

Nothing in this package touches a socket, a clock, a thread, a subprocess or an
event loop: callers pass events in, with the current time of their own clock,
and carry out the actions that come back. The daemon (`failoverd.runtime`) and
the deterministic simulator (`tests/sim`) drive the very same objects.
"""
