#!/usr/bin/env python3
"""make-corpus.py — writes the fuzz seed corpus: one file per pgoutput message
kind (and stream / copy-framing sequences), in the fuzz target's input layout
(byte 0: options, then Int16-length-prefixed chunks). Run from the repo root:
    python3 tests/fuzz/make-corpus.py tests/fuzz/corpus
"""
import os
import struct
import sys


def s(text):
    return text.encode() + b"\0"


def tup(*cols):
    out = struct.pack(">h", len(cols))
    for c in cols:
        if c is None:
            out += b"n"
        elif c == "u":
            out += b"u"
        elif isinstance(c, bytes):
            out += b"b" + struct.pack(">i", len(c)) + c
        else:
            v = c.encode()
            out += b"t" + struct.pack(">i", len(v)) + v
    return out


q = lambda v: struct.pack(">Q", v)
i32 = lambda v: struct.pack(">I", v)

begin = b"B" + q(0x16B374D848) + q(700000000000000) + i32(750)
commit = b"C\0" + q(0x16B374D848) + q(0x16B374D880) + q(700000000000000)
relation = (b"R" + i32(16384) + s("public") + s("t") + b"d" + struct.pack(">h", 3)
            + b"\1" + s("id") + i32(23) + struct.pack(">i", -1)
            + b"\0" + s("name") + i32(25) + struct.pack(">i", -1)
            + b"\0" + s("doc") + i32(17) + struct.pack(">i", -1))
insert = b"I" + i32(16384) + b"N" + tup("1", "it's", b"\x00\x01")
update_k = b"U" + i32(16384) + b"K" + tup("1", None, None) + b"N" + tup("2", "x", "u")
update_o = b"U" + i32(16384) + b"O" + tup("1", "a", None) + b"N" + tup("1", "b", None)
update_n = b"U" + i32(16384) + b"N" + tup("1", "b", "u")
delete_k = b"D" + i32(16384) + b"K" + tup("1", None, None)
delete_o = b"D" + i32(16384) + b"O" + tup("1", "b", None)
truncate = b"T" + i32(2) + b"\3" + i32(16384) + i32(16390)
message = b"M\1" + q(0x1000) + s("pgdbm") + i32(5) + b"hello"
typ = b"Y" + i32(90000) + s("public") + s("mood")
origin = b"O" + q(0x2000) + s("node_a")
sstart = b"S" + i32(760) + b"\1"
sstop = b"E"
scommit = b"c" + i32(760) + b"\0" + q(0x3000) + q(0x3100) + q(1)
sabort = b"A" + i32(760) + i32(761)
sabort4 = sabort + q(0x3200) + q(2)
bprep = b"b" + q(0x4000) + q(0x4100) + q(3) + i32(770) + s("gid1")
prep = b"P\0" + q(0x4000) + q(0x4100) + q(3) + i32(770) + s("gid1")
cprep = b"K\0" + q(0x4200) + q(0x4300) + q(4) + i32(770) + s("gid1")
rprep = b"r\0" + q(0x4100) + q(0x4400) + q(3) + q(5) + i32(770) + s("gid1")
sprep = b"p\0" + q(0x4000) + q(0x4100) + q(3) + i32(770) + s("gid1")
xlog = b"w" + q(0x5000) + q(0x5100) + q(6) + insert
keepalive = b"k" + q(0x5100) + q(7) + b"\1"

seeds = {
    "begin": (0, [begin]),
    "commit": (0, [commit]),
    "relation": (0, [relation]),
    "insert": (0, [relation, insert]),
    "insert-natts": (4, [insert]),
    "update-key": (0, [update_k]),
    "update-old": (0, [update_o]),
    "update-new-only": (0, [update_n]),
    "delete-key": (0, [delete_k]),
    "delete-old": (0, [delete_o]),
    "truncate": (0, [truncate]),
    "message": (0, [message]),
    "type": (0, [typ]),
    "origin": (0, [origin]),
    "txn": (0, [begin, relation, insert, update_k, delete_k, commit]),
    "stream-v2": (1, [sstart, relation, b"I" + i32(760) + insert[1:], sstop, scommit]),
    "stream-abort-v2": (1, [sstart, b"D" + i32(760) + delete_k[1:], sstop, sabort]),
    "stream-abort-v4": (3, [sstart, sstop, sabort4]),
    "two-phase-v3": (2, [bprep, insert, prep, cprep, rprep]),
    "stream-prepare-v3": (2, [sstart, sstop, sprep]),
    "copy-xlogdata": (0, [xlog]),
    "copy-keepalive": (0, [keepalive]),
    "small-limit": (8, [relation]),
}

out = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus"
os.makedirs(out, exist_ok=True)
for name, (opt, chunks) in seeds.items():
    data = bytes([opt]) + b"".join(struct.pack(">H", len(c)) + c for c in chunks)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(seeds), out))
