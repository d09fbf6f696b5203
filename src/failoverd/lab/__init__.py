"""The network-namespace lab used by tests and `failoverd selftest`."""
