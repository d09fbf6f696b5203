"""Health checks: tcp, pop3, imap, smtp, http(s), exec.

`build_check(cfg)` turns a `[[check]]` entry of the configuration into a
`Check`; `CheckRunner` runs many of them, each on its own interval.
"""

from typing import assert_never

from failoverd.checks.base import Check, CheckFailed, CheckOutcome
from failoverd.checks.exec import ExecProbe
from failoverd.checks.http import HttpProbe
from failoverd.checks.imap import ImapProbe
from failoverd.checks.pop3 import Pop3Probe
from failoverd.checks.runner import CheckRunner
from failoverd.checks.smtp import SmtpProbe
from failoverd.checks.tcp import TcpProbe
from failoverd.config.schema import (
    CheckConfig,
    ExecCheck,
    HttpCheck,
    ImapCheck,
    Pop3Check,
    SmtpCheck,
    TcpCheck,
)

__all__ = ["Check", "CheckFailed", "CheckOutcome", "CheckRunner", "build_check"]


def build_check(cfg: CheckConfig) -> Check:
    """The runnable check for one configured check."""
    match cfg:
        case TcpCheck():
            return TcpProbe(cfg)
        case Pop3Check():
            return Pop3Probe(cfg)
        case ImapCheck():
            return ImapProbe(cfg)
        case SmtpCheck():
            return SmtpProbe(cfg)
        case HttpCheck():
            return HttpProbe(cfg)
        case ExecCheck():
            return ExecProbe(cfg)
        case _:
            assert_never(cfg)
