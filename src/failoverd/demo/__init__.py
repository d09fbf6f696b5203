"""`failoverd demo` and what it is made of: a sample POP3 service, the scripts that start and
stop it, and a harness that runs a whole cluster of real daemons on loopback (shared with the
integration tests)."""
