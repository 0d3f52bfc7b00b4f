#!/usr/bin/env python3
"""Reads a jetsource backup file (docs/operations.md, "Backup file format") with nothing but the
standard library: checks it, then prints its header, trailer and (with --records) one JSON line
per commit. An independent reader of the format: exit 1 and a message when the file is damaged."""
import hashlib
import json
import struct
import sys


def fail(msg):
    sys.exit(f"backup-dump: {msg}")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit("usage: backup-dump.py FILE [--records]")
    data = open(args[0], "rb").read()
    if len(data) < 16 or data[:8] != b"JSBACKUP":
        fail("not a jetsource backup (no JSBACKUP magic)")
    version, hlen = struct.unpack(">II", data[8:16])
    if version != 1:
        fail(f"format version {version}, this reader knows 1")
    pos = 16 + hlen
    header = json.loads(data[16:pos])
    records, trailer = [], None
    while trailer is None:
        if pos + 5 > len(data):
            fail("truncated")
        tag, n = data[pos:pos + 1], struct.unpack(">I", data[pos + 1:pos + 5])[0]
        body = data[pos + 5:pos + 5 + n]
        if len(body) != n:
            fail("truncated")
        pos += 5 + n
        if tag == b"E":
            trailer = json.loads(body)
        elif tag == b"R":
            records.append(body)
        else:
            fail(f"unknown frame tag {tag!r}")
    if data[pos:] != hashlib.sha256(data[:pos]).digest():
        fail("SHA-256 mismatch or bytes after the checksum")
    if trailer["records"] != len(records):
        fail("record count differs from the trailer")
    print(json.dumps({"header": header, "trailer": trailer}))
    if "--records" in sys.argv:
        for r in records:
            seq, ts = struct.unpack(">QQ", r[:16])
            p = 16

            def take():
                nonlocal p
                n = struct.unpack(">I", r[p:p + 4])[0]
                p += 4 + n
                return r[p - n:p]
            subject = take().decode()
            count = struct.unpack(">I", r[p:p + 4])[0]
            p += 4
            headers = [(take().decode(), take().decode()) for _ in range(count)]
            body = take()
            print(json.dumps({"sequence": seq, "time_ns": ts, "subject": subject,
                              "headers": headers, "body": body.decode("utf-8", "replace")}))


main()
