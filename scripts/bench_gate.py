#!/usr/bin/env python3
"""Fires a burst of signups at a running dev stack (`make dev`) and prints how the gate paced
them, as seen by ses-local: spacing between sends, slot use, time to drain, and the latency of
the Worker's 200/202 answers. Standard library only.

    IP_RATE_LIMIT=off GATE_INTERVAL_MS=100 make dev   # in one terminal (the burst comes from one
                                                      # IP; ses-local throttles at the interval)
    make bench-gate N=200              # in another
"""
import argparse
import json
import statistics
import threading
import time
import urllib.error
import urllib.request


def post_signup(worker, email, results, index):
    body = json.dumps({"email": email}).encode()
    request = urllib.request.Request(f"{worker}/signup", data=body, headers={"content-type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
        try:
            code = json.loads(error.read())["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        if code == "rate_limited":
            status = "429 rate_limited"
    except OSError as error:
        status = f"error: {error}"
    results[index] = (status, (time.monotonic() - started) * 1000)


def ses_sends(ses, addresses):
    request = urllib.request.Request(f"{ses}/_requests", headers={"accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        requests = json.load(response)["requests"]
    return [r for r in requests if r["status"] == 200 and r.get("emailAddress") in addresses]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="signups in the burst (default 200)")
    parser.add_argument("--worker", default="http://127.0.0.1:8787")
    parser.add_argument("--ses", default="http://127.0.0.1:4579")
    parser.add_argument("--interval-ms", type=int, default=1000, help="the gate's GATE_INTERVAL_MS")
    args = parser.parse_args()

    run = int(time.time())
    addresses = [f"bench-{run}-{i}@example.com" for i in range(args.n)]
    results = [None] * args.n
    threads = [threading.Thread(target=post_signup, args=(args.worker, a, results, i)) for i, a in enumerate(addresses)]
    burst_started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    refused = sum(1 for status, _ in results if status == "429 rate_limited")
    if refused:
        raise SystemExit(
            f"{refused} of {args.n} signups were refused by the per-IP limit: "
            "start the stack with IP_RATE_LIMIT=off GATE_INTERVAL_MS=100 make dev"
        )

    wanted = set(addresses)
    deadline = time.time() + args.n * args.interval_ms / 1000 * 3 + 60
    sends = ses_sends(args.ses, wanted)
    while len(sends) < args.n and time.time() < deadline:
        time.sleep(0.5)
        sends = ses_sends(args.ses, wanted)

    answered = [latency for status, latency in results if status in (200, 202)]
    statuses = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    arrivals = sorted(r["receivedAtUs"] / 1000 for r in sends)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    elapsed = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0

    print(f"burst: {args.n} signups, gate interval {args.interval_ms} ms")
    print(f"answers: {statuses}")
    print(f"sent (seen by ses-local): {len(sends)} of {args.n}")
    if gaps:
        print(f"spacing at ses-local: min {min(gaps):.1f} ms, mean {statistics.mean(gaps):.1f} ms, max {max(gaps):.1f} ms")
        print(f"slot use (interval x gaps / elapsed): {args.interval_ms * len(gaps) / elapsed * 100:.1f} %")
    if arrivals:
        print(f"time to drain (burst start to last send): {arrivals[-1] / 1000 - burst_started:.1f} s")
    if answered:
        print(f"200/202 latency: p50 {percentile(answered, 50):.0f} ms, p99 {percentile(answered, 99):.0f} ms")
    if len(sends) < args.n:
        raise SystemExit("not every signup was sent before the deadline")


if __name__ == "__main__":
    main()
