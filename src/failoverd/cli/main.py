"""Entry point of the `failoverd` command; subcommands register themselves on `cli`."""

import click


@click.group()
def cli() -> None:
    """Keep one service running on exactly one of two servers.

    Each server runs `failoverd run`. The active node runs the service
    (started by its startup scripts); the standby watches it by heartbeats
    and health checks, and takes over when it fails: it sends
    SHUTDOWN_YOUR_SERVICE, then runs its own startup scripts. A load
    balancer sends clients to the node whose GET /health answers 200. A
    witness on a third host gives the vote that keeps both from being
    active at once.

    \b
    The daemons:
      run            the node daemon (systemd unit failoverd.service)
      witness        the witness (failoverd-witness.service)
    \b
    Looking (these change nothing):
      status         both nodes, the safety mode, the lease, the checks
      explain        why this node is, or is not, active right now
      history        the decisions, with their reasons
    \b
    Acting:
      switchover     move the service to the other node, gracefully
      failback       move it back to the preferred primary
      maintenance    on: watch and report, never act; off: act again
    \b
    Setting up:
      check-config   check a configuration file; the worst-case failover time
      import-legacy  convert the old Perl failover_config.txt to TOML
      states         the states and transitions (text, Graphviz, Mermaid)
      demo           a real failover on this machine's loopback
      selftest       the fault scenarios, in network namespaces (root)

    The operator commands talk to the daemon on this host, at node.api of
    /etc/failoverd/failoverd.toml (-c FILE for another). On the witness's
    host, status, history and explain read the witness (-c its file, with
    witness.api set). Every command has --help. Documentation: README.md
    and docs/ in the source tree.
    """


def main() -> None:
    cli()
