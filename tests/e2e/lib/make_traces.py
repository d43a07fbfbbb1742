#!/usr/bin/env python3
"""Writes a trace directory (datasets/traces.h) from a JSON description, independently of the
C writer, so tests can hand-craft records whose curation outcome is known.

    make_traces.py SPEC.json OUTDIR

SPEC: {"samples": S, "pairs_total": P, "settings": {...ints and ASCII strings...},
       "shards": [[record, ...], ...]}
A record is the JSON object of <key>.json ("id", "line", "sample" are filled in from "line"
and "sample"); an optional "_topk": {"k", "ids", "logprobs", "chosen"} becomes <key>.topk.
Shards are POSIX pax tar archives compressed with the zstd command line tool."""
import io
import json
import os
import struct
import subprocess
import sys
import tarfile


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def topk_bytes(t, n):
    k = t["k"]
    assert len(t["ids"]) == n * k and len(t["logprobs"]) == n * k and len(t["chosen"]) == n
    return (b"R1TK" + struct.pack("<III", 1, k, n) + struct.pack("<%di" % (n * k), *t["ids"])
            + struct.pack("<%df" % (n * k), *t["logprobs"]) + struct.pack("<%df" % n, *t["chosen"]))


def add_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def main():
    spec = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    samples = spec["samples"]
    shards = []
    for i, records in enumerate(spec["shards"]):
        name = "shard-%06d.tar.zst" % i
        buf = io.BytesIO()
        pairs = []
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for r in records:
                r = dict(r)
                topk = r.pop("_topk", None)
                key = "%08d_%02d" % (r["line"], r["sample"])
                r["id"] = key
                add_member(tar, key + ".json", json.dumps(r, ensure_ascii=False).encode())
                if topk is not None:
                    add_member(tar, key + ".topk", topk_bytes(topk, len(r["completion_token_ids"])))
                pairs.append((r["line"] - 1) * samples + r["sample"])
        path = os.path.join(out, name)
        subprocess.run(["zstd", "-q", "-f", "-o", path], input=buf.getvalue(), check=True)
        pairs.sort()
        ranges = []
        for p in pairs:
            if ranges and ranges[-1][1] == p:
                ranges[-1][1] = p + 1
            else:
                ranges.append([p, p + 1])
        shards.append({"name": name, "records": len(records), "bytes": os.path.getsize(path),
                       "pairs": ranges})
    settings = dict(spec.get("settings", {}))
    settings["samples"] = samples
    compact = json.dumps(settings, separators=(",", ":"), ensure_ascii=False).encode()
    manifest = {"format": "r1-distill traces", "version": 1, "rank": 0, "world_size": 1,
                "settings": settings, "settings_hash": "%016x" % fnv1a64(compact),
                "pairs_total": spec["pairs_total"], "pairs_skipped": 0,
                "records": sum(s["records"] for s in shards), "complete": True,
                "updated": "2026-01-01T00:00:00Z", "shards": shards}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    main()
