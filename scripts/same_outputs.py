#!/usr/bin/env python3
"""Compares two output roots of cc-analytics file by file, as if one run had written both: every
file byte for byte once run ids and wall-clock times are masked (gzip files decompressed
first). Used to show that a change of the code's layout changes no output.

    scripts/same_outputs.py OUT_A OUT_B

Exit 0 when both roots hold the same files with the same bytes; else the differences are listed.
The lease and the conditional-write probe (`_lease/`, `_probe/`) hold only run ids and times,
and months' fingerprints (`_fingerprint`) hash local etags: these are left out, and etags in JSON
are masked.
"""
import gzip
import os
import re
import sys

RUN = re.compile(rb"\d{8}T\d{9}Z-[0-9a-f]{8}")
# Local etags are inode, modification time and size: they differ between two runs' files.
ETAG = re.compile(rb'"e_tag": ?"[^"]*"')
TIME = re.compile(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
BUILT = re.compile(rb"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
SKIP = ("_lease/", "_probe/")
# A month's fingerprint hashes its fact files' etags (see above); the rows beside it are compared.
SKIP_NAMES = ("_fingerprint",)


def tree(root):
    # Run ids begin with their start time: the n-th run of each root becomes RUN<n>.
    ids = set()
    for d, _, names in os.walk(root):
        for n in names:
            ids.update(RUN.findall(os.path.join(d, n).encode()))
            ids.update(RUN.findall(open(os.path.join(d, n), "rb").read()))
    order = {r: b"RUN%d" % i for i, r in enumerate(sorted(ids))}
    run = lambda data: RUN.sub(lambda m: order[m.group(0)], data)
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if rel.startswith(SKIP) or n in SKIP_NAMES:
                continue
            data = open(p, "rb").read()
            if rel.endswith(".gz"):
                data = gzip.decompress(data)
            if rel.endswith(".jsonl.gz"):
                # An objects file lists objects in the order concurrent listings finished.
                data = b"\n".join(sorted(data.split(b"\n")))
            data = run(data)
            if not rel.endswith(".parquet"):
                data = ETAG.sub(b'"e_tag":"ETAG"', BUILT.sub(b"BUILT", TIME.sub(b"TIME", data)))
            out[run(rel.encode()).decode()] = data
    return out


def main():
    a, b = tree(sys.argv[1]), tree(sys.argv[2])
    bad = sorted(set(a) ^ set(b))
    for p in bad:
        print(("only in A: " if p in a else "only in B: ") + p)
    diff = sorted(p for p in set(a) & set(b) if a[p] != b[p])
    for p in diff:
        print("differs: " + p)
    print(f"{len(a)} files in A, {len(b)} in B, {len(bad)} in one only, {len(diff)} differ")
    sys.exit(1 if bad or diff else 0)


if __name__ == "__main__":
    main()
