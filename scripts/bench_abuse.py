#!/usr/bin/env python3
"""Runs issue F's attack mix against a running dev stack and prints what got through, as seen by
ses-local: mails per targeted mailbox, the other domain's wait during a one-domain flood, refusals
by code, and the gate's intake rate. Then issue K's attacks on the lifecycle (the From identity
deleted through a variant of it, a queued victim's credentials handed to a stranger, a
confirmation before the link was opened, unlimited status lookups, a /48 rotating its /64s, a
honeypot decoy told apart), each with what it achieved. Then issue O's address checks: a mixed
stream of mistyped, throwaway and dead domains, with the SES calls and bounces it would have cost
without the checks and what it costs now, and the time the checks add to a signup, from a cold
cache and a warm one. It also prints what it exercised (requests and answers by status), so a
fast path taken by accident shows. Standard library only.

    GATE_INTERVAL_MS=100 make dev      # in one terminal (the per-IP limit stays on: the script
                                       # spreads its flood over many CF-Connecting-IP addresses)
    make bench-abuse                   # in another
"""
import argparse
import collections
import json
import threading
import time
import urllib.error
import urllib.request


FROM = "noreply@signup-verify.test"  # ses-local.toml's verified From address


def call(worker, method, path, body=None, headers=None):
    """(status, JSON body or {}, Set-Cookie or None) of one request to the Worker."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{worker}{path}", data=data, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}"), response.headers.get("set-cookie")
    except urllib.error.HTTPError as error:
        try:
            answer = json.loads(error.read())
        except ValueError:
            answer = {}
        return error.code, answer, error.headers.get("set-cookie")


def code_of(answer):
    return (answer.get("error") or {}).get("code", answer.get("status", ""))


def post(worker, email, ip):
    body = json.dumps({"email": email}).encode()
    request = urllib.request.Request(
        f"{worker}/signup", data=body,
        headers={"content-type": "application/json", "cf-connecting-ip": ip})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response).get("status", "")
    except urllib.error.HTTPError as error:
        try:
            code = json.loads(error.read())["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "?"
        return error.code, code
    except OSError as error:
        return 0, f"error: {error}"


def ses_json(ses, path, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{ses}{path}", data=data, method=method,
                                     headers={"accept": "application/json", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response) if response.status != 204 else None


def sends(ses):
    return [r for r in ses_json(ses, "/_requests")["requests"]
            if r.get("action") == "SendCustomVerificationEmail"]


def mails_to(ses, addresses):
    wanted = {a.lower() for a in addresses}
    return [m for m in ses_json(ses, "/_outbox")["messages"] if m["emailAddress"].lower() in wanted]


class Tally:
    def __init__(self):
        self.answers = collections.Counter()
        self.lock = threading.Lock()

    def post(self, worker, email, ip):
        status, code = post(worker, email, ip)
        with self.lock:
            self.answers[f"{status} {code}"] += 1
        return status, code


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", default="http://127.0.0.1:8787")
    parser.add_argument("--ses", default="http://127.0.0.1:4579")
    parser.add_argument("--flood", type=int, default=300, help="signups in the one-domain flood")
    args = parser.parse_args()
    run = int(time.time())
    tally = Tally()
    calls_before = len(sends(args.ses))
    ip_counter = iter(range(1, 1_000_000))

    def fresh_ip():
        n = next(ip_counter)
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    # 1. Address variants, each from a fresh IP.
    victim = [f"victim{run}@example.com", f"victim{run}+1@example.com", f"Victim{run}+2@example.com",
              f"VICTIM{run}+3@EXAMPLE.COM", f"victim{run}+news@example.com", f"victim{run}+a+b@example.com"]
    jane = [f"jane{run}.doe@gmail.com", f"jane{run}doe@gmail.com", f"j.a.n.e{run}.d.o.e@gmail.com",
            f"Jane{run}Doe+x@gmail.com"]
    for address in victim + jane:
        tally.post(args.worker, address, fresh_ip())

    # 2. Eight signups from one IPv6 /64.
    for i in range(8):
        tally.post(args.worker, f"six4-{run}-{i}@example.com", f"2001:db8:{run % 65536:x}:1::{i + 1:x}")

    # 3. A flood to one domain, and another domain's signup 4 s later.
    flood = [f"f{run}-{i}@flood.example" for i in range(args.flood)]
    threads = []
    answered_at = []
    started = time.monotonic()

    def flood_one(address, ip):
        tally.post(args.worker, address, ip)
        answered_at.append(time.monotonic())

    for i, address in enumerate(flood):
        ip = f"10.200.{i // 5 // 256 % 256}.{i // 5 % 256}"  # five per IP: under the per-IP limit
        thread = threading.Thread(target=flood_one, args=(address, ip))
        thread.start()
        threads.append(thread)
    time.sleep(4)
    quiet = f"someone{run}@quiet.example"
    asked_us = int(time.time() * 1_000_000)
    tally.post(args.worker, quiet, fresh_ip())
    for thread in threads:
        thread.join()
    intake_s = max(answered_at) - started
    wait_ms = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = [r for r in sends(args.ses) if r.get("emailAddress") == quiet]
        if seen:
            wait_ms = (seen[0]["receivedAtUs"] - asked_us) / 1000
            break
        time.sleep(0.1)
    ahead = len([r for r in sends(args.ses)[calls_before:]
                 if r.get("emailAddress", "").endswith("@flood.example")
                 and seen and asked_us <= r["receivedAtUs"] < seen[0]["receivedAtUs"]])
    # The flood drains completely before the next attack (its faults must meet their own signup).
    deadline = time.monotonic() + 300
    while len(mails_to(args.ses, flood)) < args.flood and time.monotonic() < deadline:
        time.sleep(0.5)
    flood_sent = len(mails_to(args.ses, flood))

    # 4. Replies SES sent but nobody could read, with resubmissions.
    lost = {}
    for fault in ["deliver_truncated", "deliver_hang"]:
        ses_json(args.ses, "/_faults", "POST", {"action": "SendCustomVerificationEmail", "fault": fault, "count": 1})
        address = f"{fault}-{run}@example.com"
        for variant in [address, address, address.replace("@", "+again@")]:
            tally.post(args.worker, variant, fresh_ip())
        time.sleep(1)
        lost[fault] = len(mails_to(args.ses, [address]))

    print(f"attack mix against {args.worker} (run {run})")
    print(f"mails to victim{run}@example.com from 6 variants: {len(mails_to(args.ses, victim))}")
    print(f"mails to jane{run}doe@gmail.com from 4 variants: {len(mails_to(args.ses, jane))}")
    for fault, count in lost.items():
        print(f"mails for one signup + 2 resubmissions under {fault}: {count}")
    print(f"flood: {args.flood} signups to one domain answered in {intake_s:.2f} s "
          f"({args.flood / intake_s:.0f} signups/s intake); {flood_sent} of them sent, each once")
    if wait_ms is None:
        print("other domain's signup: not sent within 60 s")
    else:
        print(f"other domain's signup, 4 s into the flood: sent after {wait_ms:.0f} ms; "
              f"{ahead} flood mails went out between its arrival and its send")
    print("answers by status and code (what this run exercised):")
    for answer, count in sorted(tally.answers.items()):
        print(f"  {answer}: {count}")
    print(f"SES calls this run: {len(sends(args.ses)) - calls_before}")
    lifecycle_attacks(args, run, fresh_ip)


def identity_status(ses, address):
    requests = ses_json(ses, "/_requests")["requests"]
    deletes = [r for r in requests if r.get("action") == "DeleteIdentity"
               and (r.get("emailAddress") or "").lower() == address.lower()]
    return len(deletes)


def lifecycle_attacks(args, run, fresh_ip):
    """Issue K's attacks; each line says what the attacker achieved."""
    print()
    print("issue K: attacks on the lifecycle (what each achieved)")
    # 1. A variant of the From address, then after the cooldown the From address itself.
    variant = FROM.replace("@", f"+k{run}@")
    call(args.worker, "POST", "/signup", {"email": variant}, {"cf-connecting-ip": fresh_ip()})
    time.sleep(62)
    status, answer, _ = call(args.worker, "POST", "/signup", {"email": FROM}, {"cf-connecting-ip": fresh_ip()})
    time.sleep(15)
    later, _, _ = call(args.worker, "POST", "/signup", {"email": f"after-from-{run}@example.com"},
                       {"cf-connecting-ip": fresh_ip()})
    print(f"  From identity through a variant of it: signup {status} {code_of(answer)}; "
          f"DeleteIdentity calls naming the From address: {identity_status(args.ses, FROM)}; "
          f"a later signup answered {later} (FromEmailAddressNotVerified would be 500)")
    # 2. A victim queued behind a short burst, and a stranger submitting a variant of it.
    burst = [f"k{run}-burst{i}@burst{i % 3}.example" for i in range(60)]
    threads = [threading.Thread(target=call, args=(args.worker, "POST", "/signup", {"email": a},
                                                   {"cf-connecting-ip": fresh_ip()})) for a in burst]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    victim = f"jane.k{run}@gmail.com"
    v_status, v_answer, _ = call(args.worker, "POST", "/signup", {"email": victim}, {"cf-connecting-ip": fresh_ip()})
    s_status, s_answer, s_cookie = call(args.worker, "POST", "/signup", {"email": f"J.a.n.e.k{run}+z@googlemail.com"},
                                        {"cf-connecting-ip": fresh_ip()})
    for thread in threads:
        thread.join()
    print(f"  a queued victim's credentials: victim {v_status} {v_answer.get('status', code_of(v_answer))}; "
          f"stranger {s_status} {s_answer.get('status', code_of(s_answer))}, "
          f"token handed out: {'statusToken' in s_answer}, cookie handed out: {s_cookie is not None}")
    # 3. A confirmation before the link was opened.
    c_status, c_answer, cookie = call(args.worker, "POST", "/signup", {"email": f"early-k{run}@example.com"},
                                      {"cf-connecting-ip": fresh_ip()})
    pair = (cookie or "").split(";")[0]
    early, early_answer, _ = call(args.worker, "POST", "/confirm", None,
                                  {"cookie": pair, "origin": args.worker, "cf-connecting-ip": fresh_ip()})
    print(f"  confirm before the link is opened: {early} {code_of(early_answer)} (signup {c_status})")
    # 4. Status lookups from one IP.
    token = c_answer.get("statusToken", "")
    answers = collections.Counter(
        call(args.worker, "GET", "/signup/status", None,
             {"authorization": f"Bearer {token}", "cf-connecting-ip": "2001:db8:4b:1::1"})[0]
        for _ in range(200))
    print(f"  200 status lookups from one IP in a burst: {dict(sorted(answers.items()))}")
    # 5. Signups from 40 /64s of one /48.
    rotated = collections.Counter(
        call(args.worker, "POST", "/signup", {"email": f"rot{n}-k{run}@example.com"},
             {"cf-connecting-ip": f"2001:db8:{run % 65536:x}:{n:x}::1"})[0]
        for n in range(40))
    print(f"  40 signups from 40 /64s of one /48: {dict(sorted(rotated.items()))}")
    # 6. The honeypot decoy beside a real signup, by every answer a bot can read, once the
    #    queue the attacks above left has drained (under load a real signup is queued, 202,
    #    while a decoy always answers 200: docs/security.md).
    time.sleep(10)
    shapes = []
    for body in [{"email": f"bot-k{run}@example.com", "website": "http://spam.example"},
                 {"email": f"human-k{run}@example.com"}]:
        status, answer, cookie = call(args.worker, "POST", "/signup", body, {"cf-connecting-ip": fresh_ip()})
        polled, polled_answer, _ = call(args.worker, "GET", "/signup/status", None,
                                        {"authorization": f"Bearer {answer.get('statusToken', '')}",
                                         "cf-connecting-ip": fresh_ip()})
        confirmed, confirmed_answer, _ = call(args.worker, "POST", "/confirm", None,
                                              {"cookie": (cookie or "").split(";")[0], "origin": args.worker,
                                               "cf-connecting-ip": fresh_ip()})
        shapes.append((status, sorted(answer), polled, polled_answer.get("status"), sorted(polled_answer),
                       confirmed, code_of(confirmed_answer)))
    print(f"  honeypot decoy told apart by its answers (signup, status, confirm), idle gate: "
          f"{shapes[0] != shapes[1]}")
    address_checks(args, run, fresh_ip)


# Issue O's mixed stream: (address pattern, kind, bounces if mailed). Every domain is in
# ses-local.toml's [[dns]] zone or on the vendored throwaway list.
BAD_ADDRESSES = [
    ("typo{i}-{run}@hotnail.com", "typo", True),           # NXDOMAIN, near hotmail.com
    ("typo{i}-{run}@gmial.com", "typo", False),            # a typo domain on the throwaway list
    ("burner{i}-{run}@mailinator.com", "throwaway", False),
    ("burner{i}-{run}@x.yopmail.com", "throwaway", False),
    ("burner{i}-{run}@burner.test", "throwaway", False),   # its MX is a throwaway host
    ("dead{i}-{run}@no-mail.test", "dead", True),          # a null MX
    ("dead{i}-{run}@dead.test", "dead", True),             # no MX, no A, no AAAA
]


def timed_post(worker, email, ip):
    started = time.monotonic()
    status, code = post(worker, email, ip)
    return status, code, (time.monotonic() - started) * 1000


def address_checks(args, run, fresh_ip):
    print()
    print("issue O: address checks before SES (a mixed stream of mistyped, throwaway and dead domains)")
    per_pattern = 6
    stream = [(pattern.format(i=i, run=run), kind, bounces)
              for i in range(per_pattern) for pattern, kind, bounces in BAD_ADDRESSES]
    calls_before = len(sends(args.ses))
    answers = collections.Counter()
    by_kind = collections.Counter()
    for address, kind, _ in stream:
        status, code = post(args.worker, address, fresh_ip())
        answers[f"{status} {code}"] += 1
        by_kind[kind] += 1
    addresses = {address.lower() for address, _, _ in stream}
    sent_now = [r for r in sends(args.ses)[calls_before:] if r.get("emailAddress", "").lower() in addresses]
    bounced_now = sum(1 for r in sent_now for address, _, bounces in stream
                      if bounces and r.get("emailAddress", "").lower() == address.lower())
    would_bounce = sum(1 for _, _, bounces in stream if bounces)
    print(f"  {len(stream)} signups ({dict(sorted(by_kind.items()))}), answered: {dict(sorted(answers.items()))}")
    print(f"  without the checks: {len(stream)} SES calls (one slot a second each), "
          f"{would_bounce} hard bounces (the rest mailed throwaway inboxes or a typo-squatter)")
    print(f"  with the checks:    {len(sent_now)} SES calls, {bounced_now} bounces")

    # The time the checks add: one signup at a time (spaced past the gate's interval, so no
    # signup waits for a slot), each to a new domain (a cold cache: one DNS question to ses-local's
    # stand-in), then each to one domain already answered (a warm cache).
    def series(label, addresses):
        times = []
        for address in addresses:
            status, _, ms = timed_post(args.worker, address, fresh_ip())
            if status in (200, 202):
                times.append(ms)
            time.sleep(0.25)
        times.sort()
        return times

    cold = series("cold", [f"cold{i}-{run}@cold{i}-{run}.example" for i in range(20)])
    timed_post(args.worker, f"first-{run}@warm-{run}.example", fresh_ip())
    time.sleep(0.25)
    warm = series("warm", [f"warm{i}-{run}@warm-{run}.example" for i in range(20)])
    if cold and warm:
        median = lambda xs: xs[len(xs) // 2]
        print(f"  one signup at a time, median of {len(cold)} and {len(warm)}: cold cache "
              f"{median(cold):.1f} ms, warm cache {median(warm):.1f} ms; a cold domain adds "
              f"{median(cold) - median(warm):.1f} ms (one DNS-over-HTTPS question, here to ses-local on loopback)")
    asked = ses_json(args.ses, "/_dns-queries")
    warm_questions = [q for q in asked if q["name"] == f"warm-{run}.example"]
    print(f"  DNS questions for the warm domain: {len(warm_questions)} (21 signups); in all this run: "
          f"{len([q for q in asked if str(run) in q['name']])}")


if __name__ == "__main__":
    main()
