"""What one request and its answer cost over loopback TCP on this machine, in the kernel, without Python's costs.

    python bench/loopback.py

Two processes on one TCP connection (``TCP_NODELAY``) exchange a 300-byte request and a 300-byte answer, 50,000
times, with plain blocking ``send``/``recv``. Prints the round trip and each side's user and system CPU per
exchange. Every webhook delivery is one such exchange (gateway to receiver), and every received message another
(simulator to gateway, and its acknowledgement): this is the part of their cost that no code of ours can remove.
"""

from __future__ import annotations

import json
import os
import socket
import time

EXCHANGES = 50_000
MESSAGE = b"x" * 300


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pid = os.fork()
    if pid == 0:
        for _ in range(EXCHANGES):
            server.recv(4096)
            server.send(MESSAGE)
        os._exit(0)
    before, started = os.times(), time.perf_counter()
    for _ in range(EXCHANGES):
        client.send(MESSAGE)
        client.recv(4096)
    elapsed, mine = time.perf_counter() - started, os.times()
    os.waitpid(pid, 0)
    after = os.times()
    per = 1e6 / EXCHANGES
    print(
        json.dumps(
            {
                "round_trip_us": round(elapsed * per, 1),
                "client_user_us": round((mine.user - before.user) * per, 1),
                "client_system_us": round((mine.system - before.system) * per, 1),
                "server_user_us": round((after.children_user - before.children_user) * per, 1),
                "server_system_us": round((after.children_system - before.children_system) * per, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
