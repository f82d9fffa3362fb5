"""Engine hosts: engines whose sessions run in child processes of the gateway, so that a crash in native code (a Go
panic in neonize, a segfault) ends only that process's sessions, which reconnect on another.

The gateway's side: :mod:`~wagate.engines.host.engine` (an ``Engine`` whose connections forward to a host),
:mod:`~wagate.engines.host.pool` (which host runs a new session, and when a host is replaced),
:mod:`~wagate.engines.host.process` (one host process). The host's side: :mod:`~wagate.engines.host.child`
(``python -m wagate.engines.host``). Between them: :mod:`~wagate.engines.host.channel` (requests both ways over a
socket pair) and :mod:`~wagate.engines.host.codec` (msgpack, the engine contract's records from an allowlist).
The store and the keys stay in the gateway: a host reads and writes auth state, and reports events, through it.
"""
