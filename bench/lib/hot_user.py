"""One user's orders under write and read pressure at once.

CLIENTS threads each create ROUNDS orders of 100 items (64-byte SKUs, the
largest the API allows) for one user through the gateway, and after each
create read that user's composed order list (`GET /api/users/{id}/orders`),
which grows with every create: the burst of `memory_settles_to_a_stated_
ceiling_after_bursts` (tests/e2e/hardening.rs). Prints a latency table for
each kind of request and porto's key-value counters, so where the time of
a create goes can be read off.

Usage: hot_user.py GATEWAY_URL ADMIN_URL CLIENTS ROUNDS [READS]
(READS=0: creates only, to tell the cost of a create from that of sharing
the workers with the growing reads.)
"""

import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse


def connect(url):
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)


def request(conn, method, path, body=None):
    headers = {"content-type": "application/json"} if body is not None else {}
    started = time.monotonic()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, time.monotonic() - started


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def kv_counters(admin):
    conn = connect(admin)
    _, body, _ = request(conn, "GET", "/metrics")
    counters = {}
    for line in body.decode().splitlines():
        match = re.match(r'porto_kv_operations_total\{([^}]*)\} (\S+)', line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            operation = labels["operation"]
            counters[operation] = counters.get(operation, 0) + float(match.group(2))
    return counters


def main():
    gateway, admin, clients, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    reads = len(sys.argv) < 6 or sys.argv[5] != "0"
    conn = connect(gateway)
    status, body, _ = request(
        conn,
        "POST",
        "/api/users",
        json.dumps({"name": "Hot User", "email": f"hot.{time.time_ns()}@x.example"}),
    )
    assert status == 201, (status, body)
    user = json.loads(body)["id"]
    items = [
        {"sku": "M" * 60 + f"{i:04}", "quantity": 1, "unit_price_cents": 1} for i in range(100)
    ]
    order = json.dumps({"user_id": user, "items": items})
    before = kv_counters(admin)

    timings = {"POST /api/orders": [], "GET /api/users/{id}/orders": []}
    failures = {}
    lock = threading.Lock()

    def client():
        conn = connect(gateway)
        for _ in range(rounds):
            exchanges = [("POST /api/orders", "POST", "/api/orders", order)]
            if reads:
                exchanges.append(
                    ("GET /api/users/{id}/orders", "GET", f"/api/users/{user}/orders", None)
                )
            for key, method, path, body in exchanges:
                try:
                    status, _, took = request(conn, method, path, body)
                except (OSError, http.client.HTTPException) as error:
                    # Counted like an error answer; a new connection goes on.
                    status, took = type(error).__name__, None
                    conn.close()
                    conn = connect(gateway)
                with lock:
                    if took is not None:
                        timings[key].append(took)
                    if took is None or status >= 300:
                        failures[(key, status)] = failures.get((key, status), 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    after = kv_counters(admin)

    print(f"hot-user: {clients} clients x {rounds} rounds in {wall:.1f} s")
    print(f"{'request':<30} {'count':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for key, values in timings.items():
        if not values:
            continue
        values.sort()
        print(
            f"{key:<30} {len(values):>6} "
            + " ".join(f"{percentile(values, p) * 1000:>8.0f}" for p in (50, 90, 99, 100))
        )
    creates = max(1, len(timings["POST /api/orders"]))
    print("key-value operations per create (all services):")
    for op in sorted(after):
        delta = after[op] - before.get(op, 0)
        if delta:
            print(f"  {op:<28} {delta / creates:8.2f}")
    summary = os.environ.get("HOT_USER_SUMMARY")
    if summary:
        # One whole row per run: "LABEL p50 p99 max cas wall errors".
        label = os.environ.get("HOT_USER_LABEL", "run -")
        done = sorted(timings["POST /api/orders"]) or [float("nan")]
        cas = (after.get("compare_and_swap", 0) - before.get("compare_and_swap", 0)) / creates
        with open(summary, "a") as out:
            out.write(
                f"{label} {percentile(done, 50) * 1000:.0f} {percentile(done, 99) * 1000:.0f} "
                f"{done[-1] * 1000:.0f} {cas:.2f} {wall:.1f} {sum(failures.values())}\n"
            )
    for (key, status), count in sorted(failures.items()):
        print(f"hot-user: {count} x {status} on {key}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
