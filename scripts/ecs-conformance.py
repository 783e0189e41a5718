#!/usr/bin/env python3
"""Compare trailship's ECS normalization with Elastic's reference outputs, field by field.

Reads the input/expected pairs where they are (default ../shared/samples/ecs-reference, next to
the repository; they are Elastic-licensed and not copied here), runs each input through
`trailship run --once` with a `normalize` transform (schema = "ecs"), and reports for every
field Elastic's document has whether trailship writes the same value, another value, or
nothing. Fields that describe Elastic's collection environment rather than the event (agent,
input, log offset, ingest times, tags, GeoIP and AS lookups, ECS version) are left out and
listed. Fields trailship writes that Elastic's document does not have are counted too
("extra"), so the agreement is same / (same + different + missing + extra). `related.*` are
compared as sets (ECS defines them as such; Elastic's own versions differ in their order).
Usage: scripts/ecs-conformance.py [SAMPLES_DIR] [--binary PATH]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

ENVIRONMENT = (
    "agent.", "input.", "log.", "fileset.", "service.type", "tags", "ecs.version", "host.",
    "event.created", "event.ingested", "event.module", "event.dataset", "source.geo.", "source.as.",
    "user_agent.name", "user_agent.version", "user_agent.os.", "user_agent.device.",
    "cloud.provider",
)


def flatten(v, prefix="", out=None):
    out = {} if out is None else out
    if isinstance(v, dict):
        for k, x in v.items():
            flatten(x, f"{prefix}{k}.", out)
    else:
        out[prefix[:-1]] = v
    return out


def same(a, b, key=""):
    if key.startswith("related.") and isinstance(a, list) and isinstance(b, list):
        return sorted(map(json.dumps, a)) == sorted(map(json.dumps, b))
    # ECS allows a keyword field as a single value or an array of one.
    if isinstance(a, list) and len(a) == 1 and not isinstance(b, list):
        a = a[0]
    if isinstance(b, list) and len(b) == 1 and not isinstance(a, list):
        b = b[0]
    return a == b


def run(binary, lines):
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(f"{d}/trail")
        with open(f"{d}/trail/in.ndjson", "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(f"{d}/p.toml", "w") as f:
            f.write(
                f'data_dir = "{d}/data"\n[sources.t]\ntype = "file"\ninclude = ["{d}/trail/*"]\n'
                f'[transforms.n]\ntype = "normalize"\ninputs = ["t"]\nschema = "ecs"\n'
                f'[sinks.o]\ntype = "file"\ninputs = ["n"]\npath = "{d}/out.ndjson"\n'
            )
        subprocess.run([binary, "run", "--once", "--config", f"{d}/p.toml"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with open(f"{d}/out.ndjson") as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser()
    p.add_argument("samples", nargs="?", default=os.path.join(root, "..", "shared", "samples", "ecs-reference"))
    p.add_argument("--binary", default=os.path.join(root, "target", "debug", "trailship"))
    a = p.parse_args()
    pairs = sorted(glob.glob(os.path.join(a.samples, "*", "*.log-expected.json")))
    if not pairs:
        print(f"no reference pairs under {a.samples}", file=sys.stderr)
        return 2
    total = {"same": 0, "different": 0, "missing": 0, "extra": 0}
    per_set = {}
    skipped = set()
    for exp_path in pairs:
        inp = exp_path[: -len("-expected.json")]
        expected = json.load(open(exp_path))
        if isinstance(expected, dict):
            expected = expected.get("expected", [expected])
        lines = [l.rstrip("\n") for l in open(inp) if l.strip()]
        got = {d.get("event", {}).get("original"): flatten(d) for d in run(a.binary, lines)}
        name = os.path.relpath(exp_path, a.samples)
        print(f"\n== {name}")
        before = dict(total)
        for doc in expected:
            doc = flatten(doc)
            original = doc.get("event.original")
            if original is None:
                print("   (an expected document without event.original: nothing to compare)")
                continue
            mine = got.get(original)
            if mine is None:
                print("   not normalized (not a CloudTrail record for trailship)")
                continue
            for k in sorted(doc):
                if k.startswith(ENVIRONMENT):
                    skipped.add(k.split(".")[0] + "." if "." in k else k)
                    continue
                want = doc[k]
                if k not in mine:
                    state = "missing"
                elif same(mine[k], want, k):
                    state = "same"
                else:
                    state = "different"
                total[state] += 1
                if state != "same":
                    shown = "" if state == "missing" else f"  trailship: {json.dumps(mine[k])[:80]}"
                    print(f"   {state:9} {k} = {json.dumps(want)[:80]}{shown}")
            for k in sorted(set(mine) - set(doc)):
                if k.startswith(ENVIRONMENT) or k == "event.original":
                    continue
                total["extra"] += 1
                print(f"   extra     {k}  trailship: {json.dumps(mine[k])[:80]}")
        group = per_set.setdefault(name.split(os.sep)[0], dict.fromkeys(total, 0))
        for k in total:
            group[k] += total[k] - before[k]
    for name, counts in sorted(per_set.items()):
        m = sum(counts.values())
        print(f"{name}: {m} fields; same {counts['same']} ({100 * counts['same'] / max(m, 1):.1f}%), "
              f"different {counts['different']}, missing {counts['missing']}, extra {counts['extra']}")
    n = sum(total.values())
    print(f"\nfields compared: {n}; same {total['same']} ({100 * total['same'] / max(n, 1):.1f}%), "
          f"different {total['different']}, missing {total['missing']}, extra {total['extra']}")
    print(f"left out (collection environment): {', '.join(sorted(skipped))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
