#!/usr/bin/env python3
"""gen_vectors.py — writes proto-spec/vectors/*.txt, the golden vectors of the wire protocol.

Usage:
  tools/gen_vectors.py           rewrite the vector files (review the diff before committing)
  tools/gen_vectors.py --check   exit 1 if the committed files differ from what this writes

Every vector is spelled out below as meaning (field values), and encoded here by a small
encoder of its own, written from proto-spec/protocol.md and the field lists of
messages.json; the C codec is a separate implementation, and tests/unit/net/test_codec.c
replays every vector through it (decode -> the meaning lines; encode -> the same bytes).
Invalid vectors are valid ones with bytes patched, cut or appended, each with the status
protocol.md says a decoder reports. The file format is described in protocol.md,
"Golden vectors", and at the top of every file.
"""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = json.load(open(os.path.join(ROOT, "proto-spec", "messages.json"), encoding="utf-8"))
OUT_DIR = os.path.join(ROOT, "proto-spec", "vectors")
MSGS = SPEC["messages"]
ENUMS = SPEC["enums"]
OPCODES = {op["name"]: op for op in SPEC["opcodes"]}
STATUS = {s["name"]: s["code"] for s in SPEC["statuses"]}
STATUS_NAME = {s["code"]: s["name"] for s in SPEC["statuses"]}
LIMIT = {lim["name"]: lim["value"] for lim in SPEC["limits"]}


class Raw:
    """Bytes written verbatim in place of a field (to build invalid vectors)."""

    def __init__(self, data, note="raw"):
        self.data = data
        self.note = note


def enum_index(name, value):
    if isinstance(value, int):
        return value
    return [v["name"] for v in ENUMS[name]["values"]].index(value)


def field_value(f, vals):
    """The field's value as a number where the wire has a number (for conditions)."""
    v = vals.get(f["name"])
    if isinstance(v, Raw):
        return v.data[0] if v.data else 0
    if f["type"] == "enum":
        return enum_index(f["enum"], v if v is not None else 0)
    return int(v or 0)


def present(msg, f, vals):
    c = f.get("if")
    if c is None:
        return True
    dep = [g for g in msg["fields"] if g["name"] == c["field"]][0]
    want = c["eq"] if "eq" in c else c["ne"]
    if dep["type"] == "enum":
        want = enum_index(dep["enum"], want)
    have = field_value(dep, vals)
    return have == want if "eq" in c else have != want


# ---- encoder: chunks of (bytes, comment) -----------------------------------------------------

PACK = {"u16": "<H", "status16": "<H", "u32": "<I", "u64": "<Q", "i64": "<q"}


def enc_msg(name, vals, path, out, canonical):
    msg = MSGS[name]
    for f in msg["fields"]:
        if present(msg, f, vals):
            enc_field(f, vals, path + f["name"], out, canonical)
    extra = vals.get("_extra")
    if extra and not canonical:
        out.append((extra, "%sbytes after the known fields (ignored)" % path))


def enc_field(f, vals, path, out, canonical):
    t, v = f["type"], vals.get(f["name"])
    if isinstance(v, Raw):
        out.append((v.data, "%s: %s" % (path, v.note)))
    elif t == "flags8":
        bits = vals.get("_" + f["name"], 0)
        for i, b in enumerate(f["bits"]):
            bits |= (1 << i) if vals.get(b) else 0
        out.append((bytes([bits]), "%s = 0x%02x" % (path, bits)))
    elif t in ("bool", "enum"):
        n = field_value(f, vals)
        out.append((bytes([n]), "%s = %s" % (path, v if v is not None else n)))
    elif t in PACK:
        out.append((struct.pack(PACK[t], v or 0), "%s = %s" % (path, v or 0)))
    elif t in ("bytes16", "bytes32"):
        data = v or b""
        out.append((struct.pack("<H" if t == "bytes16" else "<I", len(data)),
                    "%s length = %d" % (path, len(data))))
        if data:
            out.append((data, "%s = %s" % (path, quote(data))))
    elif t in ("list16", "list32"):
        enc_list(f, v or [], path, out, canonical)
    elif t == "msg":
        enc_msg(f["msg"], v or {}, path + ".", out, canonical)
    elif t == "sized":
        sub = []
        enc_msg(f["msg"], v or {}, path + ".", sub, canonical)
        size = sum(len(b) for b, _ in sub)
        out.append((struct.pack("<I", size), "%s size = %d" % (path, size)))
        out.extend(sub)
    else:
        raise SystemExit("type %s" % t)


def enc_list(f, items, path, out, canonical):
    count = len(items)
    out.append((struct.pack("<H" if f["type"] == "list16" else "<I", count),
                "%s count = %d" % (path, count)))
    for i, item in enumerate(items):
        sub = []
        enc_msg(f["msg"], item, "%s[%d]." % (path, i), sub, canonical)
        if f.get("sized"):
            size = sum(len(b) for b, _ in sub)
            out.append((struct.pack("<H", size), "%s[%d] size = %d" % (path, i, size)))
        out.extend(sub)


# ---- meaning lines, as codec_describe prints them ------------------------------------------


def quote(data):
    s = "".join(chr(c) if 0x20 <= c < 0x7F and c not in (0x22, 0x5C) else "\\x%02x" % c
                for c in data)
    return '"%s"' % s


def desc_msg(name, vals, prefix, lines):
    msg = MSGS[name]
    for f in msg["fields"]:
        if present(msg, f, vals):
            desc_field(f, vals, prefix, lines)


def desc_field(f, vals, prefix, lines):
    t, v, path = f["type"], vals.get(f["name"]), prefix + f["name"]
    if t == "flags8":
        for b in f["bits"]:
            lines.append("%s%s=%d" % (prefix, b, 1 if vals.get(b) else 0))
    elif t == "bool":
        lines.append("%s=%d" % (path, int(v or 0)))
    elif t == "enum":
        lines.append("%s=%s" % (path, ENUMS[f["enum"]]["values"][field_value(f, vals)]["name"]))
    elif t == "status16":
        lines.append("%s=%s" % (path, STATUS_NAME.get(v or 0, str(v))))
    elif t in PACK:
        lines.append("%s=%d" % (path, v or 0))
    elif t in ("bytes16", "bytes32"):
        lines.append("%s=%s" % (path, quote(v or b"")))
    elif t in ("list16", "list32"):
        lines.append("%s.count=%d" % (path, len(v or [])))
        for i, item in enumerate(v or []):
            desc_msg(f["msg"], item, "%s[%d]." % (path, i), lines)
    else:
        desc_msg(f["msg"], v or {}, path + ".", lines)


# ---- frames and vectors ------------------------------------------------------------------


def frame_chunks(opcode, rid, body, flags=0):
    size = sum(len(b) for b, _ in body)
    code = opcode if isinstance(opcode, int) else OPCODES[opcode]["code"]
    head = [(struct.pack("<I", 12 + size), "frame.length = %d (12 + body %d)" % (12 + size, size)),
            (struct.pack("<HH", code, flags), "frame.opcode = 0x%04x, frame.flags = 0x%04x"
             % (code, flags)),
            (struct.pack("<Q", rid), "frame.request_id = %d" % rid)]
    return head + body


def frame_lines(opcode, rid, flags):
    name = opcode if isinstance(opcode, str) else str(opcode)
    return ["frame.opcode=%s" % name, "frame.flags=%d" % flags, "frame.request_id=%d" % rid]


FILES = {}


def add(file, vec):
    FILES.setdefault(file, []).append(vec)


def request(file, name, opcode, vals, rid=7, flags=0, note=None):
    """A valid request: its bytes, the canonical bytes when they differ, its meaning."""
    msg = OPCODES[opcode]["request"]
    body, canon = [], []
    enc_msg(msg, vals, "", body, False)
    enc_msg(msg, vals, "", canon, True)
    lines = frame_lines(opcode, rid, flags)
    desc_msg(msg, vals, "", lines)
    add(file, dict(name=name, dir="request", chunks=frame_chunks(opcode, rid, body, flags),
                   canonical=frame_chunks(opcode, rid, canon, flags), expect="ok", lines=lines,
                   note=note))


def reply(file, name, opcode, vals, header=None, rid=7, flags=0, note=None):
    hdr = dict(status=0, shard=1, revision=42, raft_term=0, member_id=0x6B65656C31)
    hdr.update(header or {})
    msg = OPCODES[opcode]["reply"] if hdr["status"] == 0 else "error_body"
    body, canon = [], []
    for out, canonical in ((body, False), (canon, True)):
        enc_msg("reply_header", hdr, "header.", out, canonical)
        enc_msg(msg, vals, "", out, canonical)
    lines = frame_lines(opcode, rid, flags)
    desc_msg("reply_header", hdr, "header.", lines)
    desc_msg(msg, vals, "", lines)
    add(file, dict(name=name, dir="reply", chunks=frame_chunks(opcode, rid, body, flags),
                   canonical=frame_chunks(opcode, rid, canon, flags), expect="ok", lines=lines,
                   note=note))


def bad_request(file, name, opcode, vals, error, rid=7, note=None):
    msg = OPCODES[opcode]["request"] if isinstance(opcode, str) else None
    body = []
    if msg:
        enc_msg(msg, vals, "", body, False)
    elif vals:
        body = [(vals, "body")]
    add(file, dict(name=name, dir="request", chunks=frame_chunks(opcode, rid, body),
                   expect="error " + error, note=note))


def bad_reply(file, name, opcode, vals, error, header=None, rid=7, note=None, cut=None):
    hdr = dict(status=0, shard=1, revision=42, raft_term=0, member_id=0x6B65656C31)
    hdr.update(header or {})
    msg = OPCODES[opcode]["reply"] if hdr["status"] == 0 else "error_body"
    body = []
    enc_msg("reply_header", hdr, "header.", body, False)
    enc_msg(msg, vals, "", body, False)
    if cut is not None:
        body = cut_chunks(body, cut)
    add(file, dict(name=name, dir="reply", chunks=frame_chunks(opcode, rid, body),
                   expect="error " + error, note=note))


def truncated(file, name, direction, opcode, vals, keep, error="MALFORMED", note=None):
    """A valid body cut to its first keep bytes, framed as such (the frame is whole)."""
    msg = OPCODES[opcode]["request"] if direction == "request" else None
    body = []
    if msg:
        enc_msg(msg, vals, "", body, False)
    body = cut_chunks(body, keep)
    add(file, dict(name=name, dir=direction, chunks=frame_chunks(opcode, 7, body),
                   expect="error " + error, note=note or "body cut to %d bytes" % keep))


def cut_chunks(chunks, keep):
    out = []
    for data, comment in chunks:
        if keep <= 0:
            break
        if len(data) > keep:
            out.append((data[:keep], comment + " (cut to %d bytes)" % keep))
        else:
            out.append((data, comment))
        keep -= len(data)
    return out


def raw(file, name, direction, data, expect, note):
    add(file, dict(name=name, dir=direction, chunks=[(data, note)], expect=expect, note=None))


# ---- the vectors -------------------------------------------------------------------------

M1 = 0x6B65656C31  # member id used in reply headers
KV_A = dict(create_revision=3, mod_revision=9, version=4, lease=0, key=b"a", value=b"alpha")
KV_B = dict(create_revision=5, mod_revision=5, version=1, lease=0x1234, key=b"b\x00\xff",
            value=b"")
HELLO_REPLY = dict(version=1, features=0, cluster_id=0x636C757374657231, shard_count=2,
                   shard_map_version=1, frame_size_max=LIMIT["frame_size_max"],
                   reply_frame_size_max=LIMIT["reply_frame_size_max"],
                   key_size_max=LIMIT["key_size_max"], value_size_max=LIMIT["value_size_max"],
                   txn_ops_max=LIMIT["txn_ops_max"], in_flight_max=LIMIT["in_flight_max"],
                   watches_max=LIMIT["watches_max"])


def define_frames():
    f = "frame"
    raw(f, "frame.empty", "request", b"", "need_more", "no bytes yet")
    raw(f, "frame.length_partial", "request", b"\x14\x00\x00", "need_more",
        "three of the four length bytes")
    raw(f, "frame.body_partial", "request", struct.pack("<IHHQ", 20, 0x10, 0, 7) + b"\x00\x00",
        "need_more", "length 20 announces 24 bytes; 18 have arrived")
    raw(f, "frame.length_at_limit", "request", struct.pack("<I", LIMIT["frame_size_max"] - 4),
        "need_more", "4 + length = frame_size_max exactly: accepted, waiting for the rest")
    raw(f, "frame.length_over_limit", "request", struct.pack("<I", LIMIT["frame_size_max"] - 3),
        "error FRAME_TOO_LARGE", "4 + length = frame_size_max + 1: refused from the 4 bytes alone")
    raw(f, "frame.length_max_u32", "request", b"\xff\xff\xff\xff", "error FRAME_TOO_LARGE",
        "length 0xffffffff")
    raw(f, "frame.reply_over_limit", "reply",
        struct.pack("<I", LIMIT["reply_frame_size_max"] - 3), "error FRAME_TOO_LARGE",
        "a client refuses a reply frame over reply_frame_size_max")
    raw(f, "frame.length_short", "request", struct.pack("<IHHQ", 11, 0x20, 0, 7)[:15],
        "error FRAME_MALFORMED", "length 11 < 12: no room for opcode, flags and request id")
    raw(f, "frame.length_zero", "request", b"\x00\x00\x00\x00", "error FRAME_MALFORMED",
        "length 0")
    bad_request(f, "frame.request_id_zero", "STATUS", {}, "FRAME_MALFORMED", rid=0,
                note="request id 0 is reserved for GOAWAY")
    bad_request(f, "frame.unknown_opcode", 0x0099, b"", "UNKNOWN_OPCODE",
                note="an unassigned opcode: a reply with the status, the connection stays")
    bad_request(f, "frame.reserved_watch_opcode", 0x0100, b"\x01\x02", "UNKNOWN_OPCODE",
                note="the Watch range is reserved, not yet specified")
    bad_request(f, "frame.goaway_as_request", 0x0000, b"", "UNKNOWN_OPCODE",
                note="GOAWAY is sent by servers only")
    request(f, "frame.unknown_flags_ignored", "STATUS", {}, flags=0x8002,
            note="undefined frame flag bits are ignored (and kept by a re-encode)")
    request(f, "frame.large_request_id", "STATUS", {}, rid=0xFFFFFFFFFFFFFFFF)


def define_hello():
    f = "hello"
    hello = dict(magic=0x4C45454B, version=1, features=0)
    request(f, "hello.request", "HELLO", hello, rid=1)
    request(f, "hello.request.unknown_features", "HELLO",
            dict(hello, features=0xFFFFFFFFFFFFFFF8), rid=1,
            note="feature bits the server does not know are not granted, never an error")
    request(f, "hello.request.newer_version", "HELLO", dict(hello, version=9), rid=1,
            note="a newer client: the server answers with the version both speak")
    request(f, "hello.request.trailing", "HELLO", dict(hello, _extra=b"future"), rid=1,
            note="bytes after the known fields are ignored")
    bad_request(f, "hello.request.bad_magic", "HELLO", dict(hello, magic=0x50545448),
                "BAD_MAGIC", rid=1, note='"HTTP": not a keel client')
    bad_request(f, "hello.request.version_zero", "HELLO", dict(hello, version=0),
                "UNSUPPORTED_VERSION", rid=1)
    truncated(f, "hello.request.truncated", "request", "HELLO", hello, 9)
    truncated(f, "hello.request.empty", "request", "HELLO", hello, 0)
    hdr = dict(shard=0xFFFF, revision=0)
    reply(f, "hello.reply", "HELLO", HELLO_REPLY, header=hdr, rid=1)
    reply(f, "hello.reply.shard_port", "HELLO", dict(HELLO_REPLY, key_size_max=1024),
          header=dict(shard=1, revision=0), rid=1,
          note="on shard 1's own port, with a lower key limit than the protocol's")
    bad_reply(f, "hello.reply.zero_shards", "HELLO", dict(HELLO_REPLY, shard_count=0),
              "MALFORMED", header=hdr, rid=1)
    bad_reply(f, "hello.reply.too_many_shards", "HELLO", dict(HELLO_REPLY, shard_count=257),
              "MALFORMED", header=hdr, rid=1)
    bad_reply(f, "hello.reply.truncated", "HELLO", HELLO_REPLY, "MALFORMED", header=hdr, rid=1,
              cut=28 + 30)


def define_put():
    f = "put"
    put = dict(key=b"foo", value=b"bar")
    request(f, "put.request", "PUT", put)
    request(f, "put.request.prev_kv_lease", "PUT", dict(put, prev_kv=1, lease=0x7E57))
    request(f, "put.request.empty_value", "PUT", dict(key=b"k", value=b""))
    request(f, "put.request.binary_key", "PUT", dict(key=b"\x00\xff/\"q\"\\", value=b"\x01"),
            note="keys and values are bytes; the meaning line escapes them")
    request(f, "put.request.ignore_value", "PUT", dict(put, ignore_value=1),
            note="reserved flag: decodes; a version 1 server replies UNSUPPORTED")
    request(f, "put.request.key_at_limit", "PUT", dict(key=b"k" * LIMIT["key_size_max"],
                                                        value=b"v"))
    request(f, "put.request.trailing", "PUT", dict(put, _extra=b"\x00\x01\x02"))
    bad_request(f, "put.request.key_empty", "PUT", dict(key=b"", value=b"v"), "KEY_EMPTY")
    bad_request(f, "put.request.key_too_large", "PUT",
                dict(key=Raw(struct.pack("<H", LIMIT["key_size_max"] + 1), "key length 4097"),
                     value=Raw(b"")), "KEY_TOO_LARGE",
                note="the length is checked against its limit before the bytes are looked for")
    bad_request(f, "put.request.value_too_large", "PUT",
                dict(key=b"k", value=Raw(struct.pack("<I", LIMIT["value_size_max"] + 1),
                                         "value length 1572865")), "VALUE_TOO_LARGE")
    bad_request(f, "put.request.reserved_flag", "PUT", dict(put, _flags=0x08), "MALFORMED",
                note="flag bit 3 is not defined")
    bad_request(f, "put.request.negative_lease", "PUT", dict(put, lease=-1), "INVALID")
    bad_request(f, "put.request.value_past_end", "PUT",
                dict(key=b"k", value=Raw(struct.pack("<I", 10) + b"abc", "length 10, 3 bytes")),
                "MALFORMED")
    truncated(f, "put.request.truncated_in_lease", "request", "PUT", put, 5)
    truncated(f, "put.request.key_past_end", "request", "PUT", put, 12)
    reply(f, "put.reply", "PUT", dict(has_prev_kv=0))
    reply(f, "put.reply.prev_kv", "PUT", dict(has_prev_kv=1, prev_kv=KV_A))
    bad_reply(f, "put.reply.bad_bool", "PUT", dict(has_prev_kv=Raw(b"\x02")), "MALFORMED")
    bad_reply(f, "put.reply.prev_kv_missing", "PUT", dict(has_prev_kv=1, prev_kv=Raw(b"")),
              "MALFORMED", note="has_prev_kv = 1 promises a kv")
    bad_reply(f, "put.reply.prev_kv_key_empty", "PUT",
              dict(has_prev_kv=1, prev_kv=dict(KV_A, key=b"")), "KEY_EMPTY")


def define_range():
    f = "range"
    one = dict(key=b"foo")
    request(f, "range.request.one_key", "RANGE", one)
    request(f, "range.request.prefix_all_options", "RANGE",
            dict(key=b"app/", range_end=b"app0", keys_only=1, serializable=1,
                 sort_order="DESCEND", sort_target="MOD", revision=40, limit=10,
                 min_mod_revision=2, max_mod_revision=39, min_create_revision=1,
                 max_create_revision=30))
    request(f, "range.request.from_key", "RANGE", dict(key=b"m", range_end=b"\x00"),
            note='range_end "\\0": every key >= key')
    request(f, "range.request.all_keys_count", "RANGE",
            dict(key=b"\x00", range_end=b"\x00", count_only=1))
    request(f, "range.request.trailing", "RANGE", dict(one, _extra=b"\x2a" * 8),
            note="a future field appended: ignored")
    bad_request(f, "range.request.bad_sort_order", "RANGE", dict(one, sort_order=3), "MALFORMED")
    bad_request(f, "range.request.bad_sort_target", "RANGE", dict(one, sort_target=5),
                "MALFORMED")
    bad_request(f, "range.request.reserved_flag", "RANGE", dict(one, _flags=0x80), "MALFORMED")
    bad_request(f, "range.request.negative_revision", "RANGE", dict(one, revision=-1), "INVALID")
    bad_request(f, "range.request.negative_limit", "RANGE", dict(one, limit=-5), "INVALID")
    bad_request(f, "range.request.key_empty", "RANGE", dict(key=b"", range_end=b"\x00"),
                "KEY_EMPTY")
    bad_request(f, "range.request.range_end_too_large", "RANGE",
                dict(key=b"a", range_end=Raw(b"\x01\x10", "range_end length 4097")),
                "KEY_TOO_LARGE")
    truncated(f, "range.request.truncated_fixed", "request", "RANGE", one, 50)
    truncated(f, "range.request.no_range_end", "request", "RANGE", one, 56,
              note="range_end's length is missing (it is not optional)")
    reply(f, "range.reply.two_kvs", "RANGE", dict(count=2, kvs=[KV_A, KV_B]))
    reply(f, "range.reply.empty", "RANGE", dict(count=0))
    reply(f, "range.reply.count_only_more", "RANGE", dict(count=42, more=1))
    reply(f, "range.reply.keys_only", "RANGE", dict(count=1, kvs=[dict(KV_A, value=b"")]))
    bad_reply(f, "range.reply.count_past_end", "RANGE",
              dict(count=3, kvs=Raw(struct.pack("<I", 3), "kvs count = 3 (one follows)")),
              "MALFORMED")
    bad_reply(f, "range.reply.count_huge", "RANGE",
              dict(count=1, kvs=Raw(b"\xff\xff\xff\xff", "kvs count = 4294967295")),
              "MALFORMED", note="a count larger than the bytes left is refused before any loop")
    bad_reply(f, "range.reply.bad_more", "RANGE", dict(count=0, more=Raw(b"\x05")), "MALFORMED")
    bad_reply(f, "range.reply.kv_truncated", "RANGE", dict(count=1, kvs=[KV_A]), "MALFORMED",
              cut=28 + 13 + 40)


def define_delete_range():
    f = "delete_range"
    request(f, "delete_range.request.one_key", "DELETE_RANGE", dict(key=b"foo"))
    request(f, "delete_range.request.prefix_prev_kv", "DELETE_RANGE",
            dict(key=b"tmp/", range_end=b"tmp0", prev_kv=1))
    bad_request(f, "delete_range.request.reserved_flag", "DELETE_RANGE",
                dict(key=b"a", _flags=0x02), "MALFORMED")
    bad_request(f, "delete_range.request.key_empty", "DELETE_RANGE", dict(key=b""), "KEY_EMPTY")
    truncated(f, "delete_range.request.truncated", "request", "DELETE_RANGE",
              dict(key=b"abc", range_end=b"abd"), 8)
    reply(f, "delete_range.reply.none", "DELETE_RANGE", dict(deleted=0))
    reply(f, "delete_range.reply.prev_kvs", "DELETE_RANGE", dict(deleted=2, prev_kvs=[KV_A, KV_B]))
    bad_reply(f, "delete_range.reply.truncated", "DELETE_RANGE", dict(deleted=1, prev_kvs=[KV_A]),
              "MALFORMED", cut=28 + 12 + 20)


CAS = dict(compares=[dict(target="MOD", result="EQUAL", key=b"lock", operand=5)],
           success=[dict(kind="PUT", put=dict(key=b"lock", value=b"me", prev_kv=1))],
           failure=[dict(kind="RANGE", range=dict(key=b"lock"))])


def define_txn():
    f = "txn"
    request(f, "txn.request.cas", "TXN", CAS, note="compare-and-swap: put if mod_revision = 5")
    request(f, "txn.request.value_compare_all_ops", "TXN", dict(
        compares=[dict(target="VALUE", result="NOT_EQUAL", key=b"k", value=b"old"),
                  dict(target="VERSION", result="GREATER", key=b"a", range_end=b"b", operand=0),
                  dict(target="LEASE", result="LESS", key=b"l", operand=100)],
        success=[dict(kind="DELETE_RANGE", delete_range=dict(key=b"k", prev_kv=1)),
                 dict(kind="PUT", put=dict(key=b"k", value=b"new")),
                 dict(kind="RANGE", range=dict(key=b"a", range_end=b"b", limit=1))]))
    request(f, "txn.request.empty", "TXN", {}, note="no compares: the success branch runs")
    request(f, "txn.request.op_trailing", "TXN", dict(
        success=[dict(kind="PUT", put=dict(key=b"k", value=b"v", _extra=b"\x09\x09"))]),
        note="bytes after a sized op body's fields are ignored, like a body's")
    bad_request(f, "txn.request.too_many_compares", "TXN",
                dict(compares=Raw(struct.pack("<H", 129), "compares count = 129")),
                "TOO_MANY_OPS", note="the count is checked before the elements")
    bad_request(f, "txn.request.too_many_success", "TXN",
                dict(success=Raw(struct.pack("<H", 129), "success count = 129")), "TOO_MANY_OPS")
    bad_request(f, "txn.request.nested_txn", "TXN",
                dict(success=[dict(kind="TXN")]), "UNSUPPORTED",
                note="op kind 3 is reserved for nested transactions")
    bad_request(f, "txn.request.bad_op_kind", "TXN", dict(failure=[dict(kind=9)]), "MALFORMED")
    bad_request(f, "txn.request.bad_compare_target", "TXN",
                dict(compares=[dict(target=5, result="EQUAL", key=b"k")]), "MALFORMED")
    bad_request(f, "txn.request.bad_compare_result", "TXN",
                dict(compares=[dict(target="MOD", result=4, key=b"k")]), "MALFORMED")
    bad_request(f, "txn.request.op_size_past_end", "TXN",
                dict(success=[dict(kind="PUT", put=Raw(struct.pack("<I", 100) + b"\x00",
                                                       "put size 100, 1 byte"))]), "MALFORMED")
    bad_request(f, "txn.request.op_key_empty", "TXN",
                dict(success=[dict(kind="PUT", put=dict(key=b"", value=b"v"))]), "KEY_EMPTY",
                note="a rule broken inside a nested body reports that rule's status")
    bad_request(f, "txn.request.compare_value_too_large", "TXN",
                dict(compares=[dict(target="VALUE", result="EQUAL", key=b"k",
                                    value=Raw(struct.pack("<I", LIMIT["value_size_max"] + 1),
                                              "value length 1572865"))]), "VALUE_TOO_LARGE")
    bad_request(f, "txn.request.op_body_short", "TXN",
                dict(success=[dict(kind="PUT", put=Raw(struct.pack("<I", 3) + b"\x00\x00\x00",
                                                       "put size 3: shorter than its fields"))]),
                "MALFORMED")
    reply(f, "txn.reply.succeeded", "TXN", dict(succeeded=1, replies=[
        dict(kind="PUT", put=dict(has_prev_kv=1, prev_kv=KV_A))]))
    reply(f, "txn.reply.failed_range", "TXN", dict(succeeded=0, replies=[
        dict(kind="RANGE", range=dict(count=1, kvs=[KV_B]))]))
    reply(f, "txn.reply.three_kinds", "TXN", dict(succeeded=1, replies=[
        dict(kind="DELETE_RANGE", delete_range=dict(deleted=1)),
        dict(kind="PUT", put=dict()),
        dict(kind="RANGE", range=dict(count=0))]))
    bad_reply(f, "txn.reply.nested_kind", "TXN", dict(succeeded=1, replies=[dict(kind="TXN")]),
              "UNSUPPORTED")
    bad_reply(f, "txn.reply.truncated", "TXN", dict(succeeded=1, replies=[
        dict(kind="PUT", put=dict(has_prev_kv=1, prev_kv=KV_A))]), "MALFORMED", cut=28 + 3 + 10)


def define_compact():
    f = "compact"
    request(f, "compact.request", "COMPACT", dict(revision=100))
    request(f, "compact.request.physical", "COMPACT", dict(revision=7, physical=1, shard=1))
    bad_request(f, "compact.request.revision_zero", "COMPACT", dict(revision=0), "INVALID")
    bad_request(f, "compact.request.revision_negative", "COMPACT",
                dict(revision=-9223372036854775808), "INVALID")
    bad_request(f, "compact.request.reserved_flag", "COMPACT", dict(revision=5, _flags=0x02),
                "MALFORMED")
    truncated(f, "compact.request.truncated", "request", "COMPACT", dict(revision=100), 10)
    reply(f, "compact.reply", "COMPACT", {}, header=dict(revision=100))
    reply(f, "compact.reply.trailing", "COMPACT", dict(_extra=b"\x01"),
          note="an empty reply body with a future field: ignored")
    bad_reply(f, "compact.reply.header_truncated", "COMPACT", {}, "MALFORMED", cut=27,
              note="every reply body starts with the 28-byte reply_header")
    bad_reply(f, "compact.reply.request_id_zero", "COMPACT", {}, "MALFORMED", rid=0,
              note="only GOAWAY has request id 0")


SHARD0 = dict(shard_id=0, revision=42, compact_revision=10, keys=1000, memory_bytes=1 << 20,
              wal_bytes=3 << 20, connections=7)
SHARD1 = dict(shard_id=1, revision=17, compact_revision=0, keys=3, memory_bytes=65536,
              wal_bytes=4096, connections=2, raft_term=0)


def define_status():
    f = "status"
    request(f, "status.request", "STATUS", {})
    request(f, "status.request.trailing", "STATUS", dict(_extra=b"\xee"))
    hdr = dict(shard=0xFFFF, revision=0)
    reply(f, "status.reply.two_shards", "STATUS", dict(shards=[SHARD0, SHARD1]), header=hdr)
    reply(f, "status.reply.entry_grown", "STATUS",
          dict(shards=[dict(SHARD0, _extra=b"\x01\x02\x03\x04")]), header=hdr,
          note="an entry longer than the fields this version knows: the rest is skipped")
    bad_reply(f, "status.reply.entry_short", "STATUS",
              dict(shards=Raw(struct.pack("<HH", 1, 10) + b"\x00" * 10, "1 entry of size 10")),
              "MALFORMED", header=hdr, note="an entry shorter than its fields")
    bad_reply(f, "status.reply.entry_past_end", "STATUS",
              dict(shards=Raw(struct.pack("<HH", 1, 200) + b"\x00" * 20, "size 200, 20 bytes")),
              "MALFORMED", header=hdr)
    bad_reply(f, "status.reply.too_many_shards", "STATUS",
              dict(shards=Raw(struct.pack("<H", 257), "shards count = 257")), "MALFORMED",
              header=hdr)


def define_shard_map():
    f = "shard_map"
    request(f, "shard_map.request", "SHARD_MAP", {})
    hdr = dict(shard=0xFFFF, revision=0)
    reply(f, "shard_map.reply.two_shards", "SHARD_MAP", dict(version=1, shards=[
        dict(shard_id=0, port=2380, leader_id=M1, start_key=b"", end_key=b"m"),
        dict(shard_id=1, port=2381, leader_id=0, start_key=b"m", end_key=b"")]), header=hdr)
    bad_reply(f, "shard_map.reply.start_key_too_large", "SHARD_MAP", dict(version=1, shards=[
        dict(shard_id=0, start_key=Raw(b"\x01\x10\x00\x00", "start_key length 4097"))]),
        "KEY_TOO_LARGE", header=hdr)
    bad_reply(f, "shard_map.reply.truncated", "SHARD_MAP", dict(version=1, shards=[
        dict(shard_id=0, end_key=b"m")]), "MALFORMED", header=hdr, cut=28 + 8 + 4)


M2, M3 = M1 + 1, M1 + 2
MEMBER_1 = dict(id=M1, name=b"n1", peer_urls=[dict(url=b"http://127.0.0.1:2430")],
                client_urls=[dict(url=b"http://127.0.0.1:2379")])
MEMBER_2 = dict(id=M2, name=b"n2", peer_urls=[dict(url=b"http://127.0.0.1:2530")],
                client_urls=[dict(url=b"http://127.0.0.1:2479")])
MEMBER_NEW = dict(id=M3, is_learner=1, name=b"", peer_urls=[dict(url=b"http://127.0.0.1:2630")])
ADD = dict(as_learner=1, name=b"n3", peer_urls=[dict(url=b"http://127.0.0.1:2630")],
           client_urls=[dict(url=b"http://127.0.0.1:2579")])


def define_member():
    f = "member"
    hdr = dict(shard=0xFFFF, revision=0, raft_term=3)
    request(f, "member.list.request", "MEMBER_LIST", {})
    request(f, "member.list.request.linearizable", "MEMBER_LIST", dict(linearizable=1))
    bad_request(f, "member.list.request.reserved_flag", "MEMBER_LIST", dict(_flags=0x80),
                "MALFORMED")
    reply(f, "member.list.reply", "MEMBER_LIST", dict(
        cluster_id=0x636C757374657231, members=[MEMBER_1, dict(MEMBER_2, _extra=b"\x07")],
        shards=[dict(shard_id=0, leader_id=M1, raft_term=3),
                dict(shard_id=1, leader_id=M2, raft_term=5)]), header=hdr,
        note="member entries are sized: the second one carries a byte of a future field")
    bad_reply(f, "member.list.reply.too_many_members", "MEMBER_LIST", dict(
        members=Raw(struct.pack("<H", 65), "members count = 65")), "MALFORMED", header=hdr)
    request(f, "member.add.request", "MEMBER_ADD", ADD)
    request(f, "member.add.request.voter_no_client_url", "MEMBER_ADD",
            dict(name=b"n4", peer_urls=[dict(url=b"http://10.0.0.4:2380"),
                                        dict(url=b"http://10.0.1.4:2380")]))
    bad_request(f, "member.add.request.no_peer_url", "MEMBER_ADD", dict(name=b"n3"), "INVALID",
                note="at least one peer URL")
    bad_request(f, "member.add.request.url_empty", "MEMBER_ADD",
                dict(name=b"n3", peer_urls=[dict(url=b"")]), "INVALID")
    bad_request(f, "member.add.request.url_too_large", "MEMBER_ADD", dict(
        name=b"n3", peer_urls=[dict(url=Raw(struct.pack("<H", 257), "url length 257"))]),
        "INVALID")
    bad_request(f, "member.add.request.name_too_large", "MEMBER_ADD",
                dict(name=Raw(struct.pack("<H", 65), "name length 65")), "INVALID")
    bad_request(f, "member.add.request.too_many_urls", "MEMBER_ADD", dict(
        name=b"n3", peer_urls=Raw(struct.pack("<H", 9), "peer_urls count = 9")), "INVALID")
    bad_request(f, "member.add.request.reserved_flag", "MEMBER_ADD", dict(ADD, _flags=0x02),
                "MALFORMED")
    truncated(f, "member.add.request.truncated", "request", "MEMBER_ADD", ADD, 8)
    reply(f, "member.add.reply", "MEMBER_ADD",
          dict(member_id=M3, members=[MEMBER_1, MEMBER_2, MEMBER_NEW]), header=hdr)
    bad_reply(f, "member.add.reply.truncated", "MEMBER_ADD",
              dict(member_id=M3, members=[MEMBER_NEW]), "MALFORMED", header=hdr, cut=28 + 8 + 2 + 5)
    bad_reply(f, "member.add.reply.bad_learner_bool", "MEMBER_ADD",
              dict(member_id=M3, members=[dict(MEMBER_NEW, is_learner=Raw(b"\x02"))]),
              "MALFORMED", header=hdr)
    request(f, "member.remove.request", "MEMBER_REMOVE", dict(member_id=M2))
    bad_request(f, "member.remove.request.id_zero", "MEMBER_REMOVE", dict(member_id=0), "INVALID")
    truncated(f, "member.remove.request.truncated", "request", "MEMBER_REMOVE",
              dict(member_id=M2), 7)
    reply(f, "member.remove.reply", "MEMBER_REMOVE", dict(members=[MEMBER_1]), header=hdr)
    bad_reply(f, "member.remove.reply.entry_past_end", "MEMBER_REMOVE",
              dict(members=Raw(struct.pack("<HH", 1, 300) + b"\x00" * 9, "size 300, 9 bytes")),
              "MALFORMED", header=hdr)
    request(f, "member.promote.request", "MEMBER_PROMOTE", dict(member_id=M3))
    bad_request(f, "member.promote.request.id_zero", "MEMBER_PROMOTE", dict(member_id=0),
                "INVALID")
    reply(f, "member.promote.reply", "MEMBER_PROMOTE",
          dict(members=[MEMBER_1, MEMBER_2, dict(MEMBER_NEW, is_learner=0)]), header=hdr)
    bad_reply(f, "member.promote.reply.url_empty", "MEMBER_PROMOTE",
              dict(members=[dict(MEMBER_1, client_urls=[dict(url=b"")])]), "INVALID", header=hdr,
              note="a reply that breaks a rule does not decode: the client closes the connection")
    reply(f, "member.error.not_leader", "MEMBER_ADD",
          dict(detail=M2, message=b"shard 0 is led by another member"),
          header=dict(status=STATUS["NOT_LEADER"], shard=0xFFFF, revision=0, raft_term=3),
          note="membership changes go to shard 0's leader: detail names it")
    reply(f, "member.error.not_found", "MEMBER_REMOVE", dict(detail=99),
          header=dict(status=STATUS["MEMBER_NOT_FOUND"], shard=0xFFFF, revision=0))
    reply(f, "member.error.pending", "MEMBER_PROMOTE", dict(),
          header=dict(status=STATUS["CONF_CHANGE_PENDING"], shard=0xFFFF, revision=0))


def define_move_leader():
    f = "move_leader"
    request(f, "move_leader.request", "MOVE_LEADER", dict(shard=1, target_id=M2))
    request(f, "move_leader.request.every_shard", "MOVE_LEADER", dict(shard=0xFFFF, target_id=M2),
            note="shard 65535: every shard the receiving member leads")
    bad_request(f, "move_leader.request.target_zero", "MOVE_LEADER", dict(shard=1, target_id=0),
                "INVALID")
    truncated(f, "move_leader.request.truncated", "request", "MOVE_LEADER",
              dict(shard=1, target_id=M2), 9)
    reply(f, "move_leader.reply", "MOVE_LEADER",
          dict(shards=[dict(shard_id=1, status=0, leader_id=M2, raft_term=6)]),
          header=dict(shard=1, revision=17, raft_term=6))
    reply(f, "move_leader.reply.every_shard", "MOVE_LEADER", dict(shards=[
        dict(shard_id=0, status=0, leader_id=M2, raft_term=4),
        dict(shard_id=2, status=STATUS["LEADER_TRANSFER_FAILED"], leader_id=M1, raft_term=2)]),
        header=dict(shard=0xFFFF, revision=0),
        note="one entry per shard the member led; each with its own status")
    reply(f, "move_leader.reply.led_none", "MOVE_LEADER", dict(),
          header=dict(shard=0xFFFF, revision=0))
    bad_reply(f, "move_leader.reply.entry_short", "MOVE_LEADER",
              dict(shards=Raw(struct.pack("<HH", 1, 12) + b"\x00" * 12, "1 entry of size 12")),
              "MALFORMED", header=dict(shard=0xFFFF, revision=0),
              note="an entry shorter than its fields (20 bytes)")
    reply(f, "move_leader.error.learner", "MOVE_LEADER", dict(detail=M3),
          header=dict(status=STATUS["MEMBER_IS_LEARNER"], shard=1, revision=17, raft_term=6))


def define_endpoint_status():
    f = "endpoint_status"
    hdr = dict(shard=0xFFFF, revision=0)
    request(f, "endpoint_status.request", "ENDPOINT_STATUS", {})
    leader = dict(shard_id=0, role="LEADER", leader_id=M1, raft_term=3, raft_commit_index=120,
                  raft_applied_index=119, raft_last_index=121, revision=100, progress=[
                      dict(member_id=M2, state="REPLICATE", match_index=121, next_index=122,
                           recent_active=1),
                      dict(member_id=M3, is_learner=1, state="SNAPSHOT", match_index=40,
                           next_index=41)])
    follower = dict(shard_id=1, role="FOLLOWER", leader_id=M2, raft_term=5,
                    raft_commit_index=77, raft_applied_index=77, raft_last_index=78, revision=60)
    reply(f, "endpoint_status.reply", "ENDPOINT_STATUS",
          dict(name=b"n1", shards=[leader, follower]), header=hdr,
          note="leads shard 0 (with its peers' progress), follows in shard 1")
    reply(f, "endpoint_status.reply.no_leader", "ENDPOINT_STATUS", dict(name=b"n3", shards=[
        dict(shard_id=0, role="CANDIDATE", raft_term=9, raft_last_index=5, _extra=b"\x01\x02")]),
        header=hdr, note="no known leader (0); a shard entry with a future field")
    bad_reply(f, "endpoint_status.reply.bad_role", "ENDPOINT_STATUS",
              dict(shards=[dict(shard_id=0, role=4)]), "MALFORMED", header=hdr)
    bad_reply(f, "endpoint_status.reply.bad_progress_state", "ENDPOINT_STATUS", dict(shards=[
        dict(shard_id=0, role="LEADER", progress=[dict(member_id=M2, state=3)])]), "MALFORMED",
        header=hdr)
    bad_reply(f, "endpoint_status.reply.truncated", "ENDPOINT_STATUS",
              dict(name=b"n1", shards=[follower]), "MALFORMED", header=hdr, cut=28 + 5 + 2 + 20)


def define_errors():
    f = "error"
    reply(f, "error.not_leader", "PUT", dict(detail=M1 + 1, message=b"not the leader of shard 1"),
          header=dict(status=STATUS["NOT_LEADER"]),
          note="any reply with a status other than OK carries an error_body")
    reply(f, "error.compacted", "RANGE", dict(detail=40, message=b"compacted"),
          header=dict(status=STATUS["COMPACTED"], revision=90))
    reply(f, "error.unknown_opcode", 0x0099, dict(detail=0x99), rid=9,
          header=dict(status=STATUS["UNKNOWN_OPCODE"], shard=0xFFFF, revision=0))
    reply(f, "error.unknown_status", "PUT", dict(detail=0), header=dict(status=999),
          note="a status this client does not know: still an error_body, shown as a number")
    reply(f, "error.goaway_frame_too_large", "GOAWAY",
          dict(detail=LIMIT["frame_size_max"], message=b"frame too large"), rid=0,
          header=dict(status=STATUS["FRAME_TOO_LARGE"], shard=0xFFFF, revision=0))
    reply(f, "error.goaway_shutting_down", "GOAWAY", dict(), rid=0,
          header=dict(status=STATUS["SHUTTING_DOWN"], shard=0xFFFF, revision=0))
    bad_reply(f, "error.goaway_ok", "GOAWAY", dict(), "MALFORMED", rid=0,
              header=dict(shard=0xFFFF, revision=0), note="GOAWAY always carries an error")
    bad_reply(f, "error.goaway_with_request_id", "GOAWAY", dict(), "MALFORMED", rid=5,
              header=dict(status=STATUS["SHUTTING_DOWN"]))
    bad_reply(f, "error.reply_request_id_zero", "PUT", dict(), "MALFORMED", rid=0)
    bad_reply(f, "error.message_too_large", "PUT",
              dict(detail=0, message=Raw(struct.pack("<H", 1025), "message length 1025")),
              "MALFORMED", header=dict(status=STATUS["INTERNAL"]))
    bad_reply(f, "error.header_truncated", "PUT", dict(), "MALFORMED", cut=20)
    bad_reply(f, "error.body_truncated", "PUT", dict(detail=1, message=b"x"), "MALFORMED",
              header=dict(status=STATUS["INTERNAL"]), cut=28 + 9)


def define():
    define_frames()
    define_hello()
    define_put()
    define_range()
    define_delete_range()
    define_txn()
    define_compact()
    define_status()
    define_shard_map()
    define_member()
    define_move_leader()
    define_endpoint_status()
    define_errors()


# ---- writing -----------------------------------------------------------------------------

HEADER = """\
# keel golden vectors: {title}
# GENERATED by tools/gen_vectors.py; the format is in proto-spec/protocol.md, "Golden vectors".
#
#   vector NAME          starts a vector
#   dir request|reply    which side sends the bytes
#   hex HEX              the bytes (one or more lines; spaces ignored; '#' starts a comment)
#   canonical HEX        what an encoder writes for the same meaning, when that differs
#                        (bytes after known fields are dropped); absent: the hex itself
#   expect ok | need_more | error STATUS
#   NAME=VALUE           (after expect ok) the decoded meaning, one field per line
#   end
"""


def hex_lines(key, chunks):
    out = []
    for data, comment in chunks:
        for i in range(0, max(len(data), 1), 32):
            piece = data[i:i + 32].hex()
            piece = " ".join(piece[j:j + 8] for j in range(0, len(piece), 8))
            note = comment if i == 0 else comment + " (continued)"
            out.append("%s %-36s # %s" % (key, piece, note) if note else "%s %s" % (key, piece))
    return out


def render(title, vectors):
    lines = [HEADER.format(title=title)]
    for v in vectors:
        lines.append("vector " + v["name"])
        if v.get("note"):
            lines.append("# " + v["note"])
        lines.append("dir " + v["dir"])
        lines.extend(hex_lines("hex", v["chunks"]))
        data = b"".join(b for b, _ in v["chunks"])
        canon = v.get("canonical")
        if canon is not None and b"".join(b for b, _ in canon) != data:
            lines.extend(hex_lines("canonical", canon))
        lines.append("expect " + v["expect"])
        lines.extend(v.get("lines") or [])
        lines.append("end")
        lines.append("")
    return "\n".join(lines)


def main(argv):
    define()
    check = "--check" in argv
    stale = []
    names = set()
    for file, vectors in FILES.items():
        for v in vectors:
            assert v["name"] not in names, "duplicate vector %s" % v["name"]
            names.add(v["name"])
        text = render(file, vectors)
        path = os.path.join(OUT_DIR, file + ".txt")
        if check:
            have = open(path, encoding="utf-8").read() if os.path.exists(path) else None
            if have != text:
                stale.append(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    known = {f + ".txt" for f in FILES}
    extra = [f for f in os.listdir(OUT_DIR) if f.endswith(".txt") and f not in known]
    stale.extend(os.path.join(OUT_DIR, f) for f in extra)
    if check:
        for p in stale:
            print("stale vector file (run tools/gen_vectors.py): %s" % p, file=sys.stderr)
        print("gen_vectors --check: %d vectors in %d files: %s"
              % (len(names), len(FILES), "FAILED" if stale else "ok"))
        return 1 if stale else 0
    print("wrote %d vectors in %d files" % (len(names), len(FILES)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
