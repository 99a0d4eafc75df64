"""Scenario 10: what the revocation check costs per request.

Every authenticated request verifies its access token (an EdDSA signature,
offline) and then asks Redis whether the account or the session is revoked
(one round trip, two ZSCOREs pipelined: services.shared.revocation). This
measures both in one process, in alternating rounds over the same tokens,
against the real Redis: latency and CPU per request for the signature alone
and for the signature with the check, and their ratio. A tenth of the tokens'
sessions are revoked, so the check finds entries as it would in production.

    python -m bench.revocation [--quick] [--redis-url URL]

(prints the figures; `python -m bench --only revocation` also writes them
into RESULTS.md and results.json, after the preparation every run makes).
"""
import argparse
import json
import os
import statistics
import time
import uuid

from services.shared.revocation import Revocation, RevocationList, revocation_client
from services.shared.tokens import TokenSigner, TokenVerifier, new_key_pair

TOKENS = 1000
REVOKED_SHARE = 10  # one token in this many has a revoked session


def _tokens(signer):
    return [signer.sign(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(TOKENS)]


def _round(tokens, verify):
    wall, cpu = time.perf_counter(), time.process_time()
    for token in tokens:
        verify(token)
    return ((time.perf_counter() - wall) / len(tokens), (time.process_time() - cpu) / len(tokens))


def revocation_cost(quick, redis_url, log=print):
    private, public = new_key_pair()
    signer, verifier = TokenSigner(private, 900), TokenVerifier(public)
    tokens = _tokens(signer)
    revocations = RevocationList(revocation_client({"REDIS_URL": redis_url}), ttl_seconds=120)
    for token in tokens[::REVOKED_SHARE]:
        verified = verifier.verify_token(token)
        revocations.apply(Revocation(user_id=verified.user_id, session_ids=(verified.session_id,)))
    refused = sum(revocations.is_revoked(verifier.verify_token(token)) for token in tokens)
    assert refused == TOKENS // REVOKED_SHARE, refused

    def signature_only(token):
        return verifier.verify_token(token)

    def with_check(token):
        return revocations.is_revoked(verifier.verify_token(token))

    rounds = 3 if quick else 10
    measured = {"signature": [], "signature_and_check": []}
    for round_number in range(rounds):
        # Alternating, so drift in the machine's load touches both alike.
        measured["signature"].append(_round(tokens, signature_only))
        measured["signature_and_check"].append(_round(tokens, with_check))
        log(f"round {round_number + 1}/{rounds}")
    result = {"requests_per_round": TOKENS, "rounds": rounds}
    for name, samples in measured.items():
        result[name] = {"latency_us": round(statistics.median(wall for wall, _ in samples) * 1e6, 1),
                        "cpu_us": round(statistics.median(cpu for _, cpu in samples) * 1e6, 1)}
    check, alone = result["signature_and_check"], result["signature"]
    result["check_latency_us"] = round(check["latency_us"] - alone["latency_us"], 1)
    result["check_cpu_us"] = round(check["cpu_us"] - alone["cpu_us"], 1)
    result["latency_ratio"] = round(check["latency_us"] / alone["latency_us"], 2)
    result["cpu_ratio"] = round(check["cpu_us"] / alone["cpu_us"], 2)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.revocation", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)
    from bench.report import revocation_section
    from bench.run import code_version, loadavg

    load_before = loadavg()
    found = dict(revocation_cost(args.quick, args.redis_url), code=code_version(), loadavg_before=load_before,
                 started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    print(json.dumps(found, indent=1))
    print("\n".join(revocation_section(found)))


if __name__ == "__main__":
    main()
