"""From the validated configuration to the core's parameters, in seconds."""

from failoverd.config.schema import NodeConfig
from failoverd.core.params import CheckSpec, NodeParams, Timing
from failoverd.core.types import ScriptPhase


def node_params(cfg: NodeConfig) -> NodeParams:
    """The parameters the core decides with; `auto` timers are resolved here."""
    t = cfg.timing
    return NodeParams(
        name=cfg.node.name,
        peer=cfg.peer.name,
        preference=cfg.node.preference,
        mode=cfg.cluster.safety,
        witness=cfg.witness.name if cfg.witness is not None else None,
        timing=Timing(
            heartbeat_interval=t.heartbeat_interval,
            dead_time=t.dead_time,
            init_dead=t.init_dead,
            shutdown_timeout=cfg.shutdown_timeout,
            lease_time=cfg.lease_time,
            drift=t.clock_drift,
            demote_margin=t.demote_margin,
            max_network_delay=t.max_network_delay,
            fence_retry=t.fence_retry,
            auto_failback_delay=t.auto_failback_delay,
        ),
        startup_budget=cfg.scripts.budget(ScriptPhase.STARTUP),
        shutdown_budget=cfg.scripts.budget(ScriptPhase.SHUTDOWN),
        fence_budget=cfg.scripts.budget(ScriptPhase.FENCE),
        demote_budget=cfg.scripts.budget(ScriptPhase.DEMOTE) if cfg.scripts.demote else None,
        auto_failback=cfg.cluster.auto_failback,
        checks=tuple(
            CheckSpec(
                name=c.name,
                scope=c.scope,
                interval=c.interval,
                timeout=c.timeout,
                rise=c.rise,
                fall=c.fall,
            )
            for c in cfg.check
        ),
    )
