"""SIGHUP reloads a valid config and refuses a broken one; SIGTERM leaves the service running."""

import signal

from failoverd.demo.waiting import wait_for
from tests.integration.conftest import TIMEOUT, MakeCluster, records, start_primary_alone


def test_sighup_reloads_a_valid_config_and_refuses_a_broken_one(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster()
    primary = cluster.primary
    start_primary_alone(cluster)
    config = primary.plan.config
    text = config.read_text()
    assert 'interval = "200ms"' in text
    config.write_text(text.replace('interval = "200ms"', 'interval = "300ms"'))
    primary.daemon.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in primary.log_text(), TIMEOUT, "the reload")

    config.write_text(text.replace("[timing]", "[timing\n"))
    primary.daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in primary.log_text(), TIMEOUT, "the refusal")
    refusal = next(line for line in primary.log_text().splitlines() if "reload refused" in line)
    assert str(config) in refusal  # FILE:LINE: what is wrong

    # A key that needs a restart is refused too, naming the key.
    config.write_text(text.replace(f"{primary.plan.api_port}", "1"))
    primary.daemon.signal(signal.SIGHUP)
    wait_for(lambda: "node.api cannot change on reload" in primary.log_text(), TIMEOUT, "refusal")
    assert primary.daemon.alive
    assert primary.state() == "active"
    assert primary.pop3() is not None


def test_sigterm_stops_the_daemon_and_leaves_the_service_running(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster()
    primary = cluster.primary
    start_primary_alone(cluster)
    service_pid = primary.service_pid()
    primary.daemon.signal(signal.SIGTERM)
    assert primary.daemon.wait(TIMEOUT) == 0
    assert records(primary.journal(), "operator", "the service is left as it is (active)")
    assert primary.service_pid() == service_pid is not None
    assert primary.pop3() == f"+OK {primary.name} ready"
    assert not [r for r in primary.journal() if r["to"] == "releasing"]
