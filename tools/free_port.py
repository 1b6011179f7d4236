#!/usr/bin/env python3
"""free_port.py [N] — prints a random TCP port P on 127.0.0.1 such that P .. P+N are all free
right now (a keeld with N shards needs its client port and N shard ports). N defaults to 2.
Used by the test and benchmark scripts; a port can still be taken between this check and the
bind, so callers that must not fail retry or report the bind error."""
import random
import socket
import sys

def main() -> int:
    shards = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    for _ in range(200):
        base = random.randint(20000, 60000 - shards)
        socks = []
        try:
            for p in range(base, base + shards + 1):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            print(base)
            return 0
        except OSError:
            pass
        finally:
            for s in socks:
                s.close()
    print("free_port: no free port range found", file=sys.stderr)
    return 1

if __name__ == "__main__":
    sys.exit(main())
