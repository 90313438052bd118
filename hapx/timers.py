"""corosync's and libknet's timer arithmetic: the runtime token, consensus and knet ping timers.

The defaults hapx derives from corosync.tokenMs, and the shortest knet ping timeout it accepts.
"""

from __future__ import annotations

from hapx import spec

# hapx's default token, not corosync's 3000 ms: with consensus 1200 ms a dead node is declared
# lost after 2.2 s (a failover measured at 2.30 s; keepalived's defaults take ~3.6 s), and
# 10-minute soaks at a third of it, idle and loaded, held (docs/benchmarks.md).
DEFAULT_TOKEN_MS = spec.default("corosync.tokenMs")
# corosync adds token_coefficient (650 ms by default) to the token for every node beyond two
# (exec/totemconfig.c, totem_volatile_config_read): the runtime token knet's timers follow.
COROSYNC_TOKEN_COEFFICIENT_MS = 650
# libknet 1.25 (Debian 12) sends pings and checks its links only once per heartbeat tick
# (KNET_THREADS_TIMERES, 200 ms, libknet/threads_heartbeat.c): a link is declared down when, at a
# tick, its last pong is older than knet_ping_timeout. Pings therefore go out every interval
# rounded up to a tick, and a timeout must leave room for one such gap plus scheduling jitter.
KNET_TICK_MS = 200
KNET_JITTER_MARGIN_MS = 100
# The shortest knet ping timers measured stable on the container lab (token 300 ms): corosync's
# own derivation gave 75/150 ms there, and the link went down every ~9 s (a spurious partition).
KNET_PING_INTERVAL_FLOOR_MS = 150
KNET_PING_TIMEOUT_FLOOR_MS = 300


def default_consensus_ms(runtime_token_ms: int) -> int:
    """corosync's own default consensus: 1.2 x the token it runs with (totemconfig.c)."""
    return int(runtime_token_ms * 1.2)


def corosync_runtime_token_ms(token_ms: int, node_count: int) -> int:
    """The token corosync runs with: the configured one plus token_coefficient per node beyond two."""
    return token_ms + max(0, node_count - 2) * COROSYNC_TOKEN_COEFFICIENT_MS


def min_knet_ping_timeout_ms(interval_ms: int) -> int:
    """The shortest safe knet ping timeout for an interval: the time between two pings (the
    interval rounded up to libknet's 200 ms tick) plus a margin for scheduling jitter. The
    pair measured stable at token 300 ms (150/300 ms) has exactly that margin; corosync's own
    75/150 ms, which flapped, is 50 ms short of the gap."""
    return -(-interval_ms // KNET_TICK_MS) * KNET_TICK_MS + KNET_JITTER_MARGIN_MS


def default_knet_ping_timers(token_ms: int, node_count: int) -> tuple[int, int]:
    """knet ping (interval, timeout) in ms derived from the token the way corosync 3.1 does
    (runtime token / (knet_pong_count * 2) and / knet_pong_count, pong count 2: token/4 and
    token/2, exec/totemconfig.c calc_knet_ping_timers), made safe: never below what was
    measured stable (150/300 ms), and where token/4 rounded up to libknet's tick would leave
    the timeout less than the margin above the gap between pings (a runtime token between 800
    and 1000 ms), the interval drops to the longest that keeps it. So for runtime tokens of
    600-800 ms and from 1000 ms up they are corosync's own."""
    token = corosync_runtime_token_ms(token_ms, node_count)
    interval = max(KNET_PING_INTERVAL_FLOOR_MS, token // 4)
    timeout = max(KNET_PING_TIMEOUT_FLOOR_MS, token // 2)
    if timeout < min_knet_ping_timeout_ms(interval):
        interval = max(KNET_PING_INTERVAL_FLOOR_MS,
                       (timeout - KNET_JITTER_MARGIN_MS) // KNET_TICK_MS * KNET_TICK_MS)
    return interval, timeout

