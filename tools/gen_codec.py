#!/usr/bin/env python3
"""gen_codec.py — proto-spec/messages.json -> net/codec_gen.h and protocol.md's tables.

Usage:
  tools/gen_codec.py            write net/codec_gen.h
  tools/gen_codec.py --tables   print every markdown table protocol.md must carry
  tools/gen_codec.py --write-md rewrite the tables after the markers in protocol.md in place
                                (the prose is left alone; review the diff)
  tools/gen_codec.py --check    exit 1 if net/codec_gen.h differs from what this script
                                writes, or if any table in proto-spec/protocol.md (the
                                ones after a "<!-- table:NAME -->" marker) disagrees with
                                messages.json (the codec_spec_drift test runs this)

The output is deterministic: it depends on messages.json alone (key order as written).
"""
import difflib
import json
import os
import re
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "proto-spec", "messages.json")
HEADER = os.path.join(ROOT, "net", "codec_gen.h")
PROTOCOL_MD = os.path.join(ROOT, "proto-spec", "protocol.md")

# Wire type -> (C type, fixed wire size or None, C codec_type name).
TYPES = {
    "bool": ("bool", 1, "CODEC_T_BOOL"),
    "enum": ("u8", 1, "CODEC_T_ENUM"),
    "flags8": ("u8", 1, "CODEC_T_FLAGS"),
    "u16": ("u16", 2, "CODEC_T_U16"),
    "status16": ("u16", 2, "CODEC_T_STATUS16"),
    "u32": ("u32", 4, "CODEC_T_U32"),
    "u64": ("u64", 8, "CODEC_T_U64"),
    "i64": ("i64", 8, "CODEC_T_I64"),
    "bytes16": ("struct span", None, "CODEC_T_BYTES16"),
    "bytes32": ("struct span", None, "CODEC_T_BYTES32"),
    "list16": ("struct codec_list", None, "CODEC_T_LIST16"),
    "list32": ("struct codec_list", None, "CODEC_T_LIST32"),
    "msg": (None, None, "CODEC_T_MSG"),
    "sized": (None, None, "CODEC_T_SIZED"),
}
# Natural bounds of each type, used when a field states none.
TYPE_MIN = {"i64": "INT64_MIN"}
TYPE_MAX = {
    "bool": "1", "enum": "UINT8_MAX", "flags8": "UINT8_MAX", "u16": "UINT16_MAX",
    "status16": "UINT16_MAX", "u32": "UINT32_MAX", "u64": "UINT64_MAX", "i64": "INT64_MAX",
    "bytes16": "UINT16_MAX", "bytes32": "UINT32_MAX", "list16": "UINT16_MAX",
    "list32": "UINT32_MAX", "msg": "0", "sized": "UINT32_MAX",
}


def load():
    with open(SPEC, encoding="utf-8") as f:
        return json.load(f)


def up(s):
    return s.upper()


def emit(w, line, doc, indent=""):
    """Writes line with doc as a trailing comment, or as a wrapped comment above it when the
    result would pass 100 columns (the repo's limit, generated code included)."""
    one = "%s%s /* %s */" % (indent, line, doc)
    if len(one) <= 100:
        w(one)
        return
    for part in textwrap.wrap(doc, 94 - len(indent)):
        w("%s/* %s */" % (indent, part))
    w(indent + line)


# ---- C header ---------------------------------------------------------------------------


def limit_value(spec, name):
    for lim in spec["limits"]:
        if lim["name"] == name:
            return lim["value"]
    raise SystemExit("unknown limit %r" % name)


def bound_c(spec, field, key):
    """C expression for a field's min or max."""
    v = field.get(key)
    if v is None:
        return TYPE_MIN.get(field["type"], "0") if key == "min" else TYPE_MAX[field["type"]]
    if isinstance(v, str):
        limit_value(spec, v)
        return "CODEC_" + up(v)
    if field["type"] == "i64":
        return "INT64_C(%d)" % v
    return "UINT64_C(%d)" % v


def enum_index(spec, enum_name, value_name):
    for i, v in enumerate(spec["enums"][enum_name]["values"]):
        if v["name"] == value_name:
            return i
    raise SystemExit("enum %s has no value %s" % (enum_name, value_name))


def cond_of(spec, msg, field):
    """(index of the field it depends on, value, negate) or None."""
    c = field.get("if")
    if c is None:
        return None
    names = [f["name"] for f in msg["fields"]]
    idx = names.index(c["field"])
    assert idx < names.index(field["name"]), "a condition names an earlier field"
    dep = msg["fields"][idx]
    raw = c["eq"] if "eq" in c else c["ne"]
    val = enum_index(spec, dep["enum"], raw) if dep["type"] == "enum" else int(raw)
    return idx, val, "ne" in c


def c_member(field):
    ctype = TYPES[field["type"]][0]
    if ctype is None:
        ctype = "struct codec_" + field["msg"]
    return "    %s %s;" % (ctype, field["name"])


def msg_order(spec):
    """Messages in dependency order (a nested struct before its user), then by name order."""
    done, out = set(), []

    def visit(name):
        if name in done:
            return
        for f in spec["messages"][name]["fields"]:
            if f["type"] in ("msg", "sized"):
                visit(f["msg"])
        done.add(name)
        out.append(name)

    for name in spec["messages"]:
        visit(name)
    return out


def gen_constants(spec, w):
    p = spec["protocol"]
    w("/* ---- protocol ------------------------------------------------------------------ */")
    w("#define CODEC_PROTOCOL_VERSION %du" % p["version"])
    w("#define CODEC_PROTOCOL_VERSION_MIN %du" % p["version_min"])
    w('#define CODEC_MAGIC 0x%08Xu /* the bytes "%s" */' % (p["magic"], p["magic_text"]))
    w("")
    w("/* ---- limits (protocol maxima; a server may advertise lower ones in HELLO) -------- */")
    for lim in spec["limits"]:
        emit(w, "#define CODEC_%s %du" % (up(lim["name"]), lim["value"]), lim["doc"])
    for c in spec["constants"]:
        emit(w, "#define CODEC_%s %du" % (up(c["name"]), c["value"]), c["doc"])
    w("")


def gen_enums(spec, w):
    w("/* ---- opcodes --------------------------------------------------------------------- */")
    w("enum codec_opcode {")
    for op in spec["opcodes"]:
        emit(w, "CODEC_OP_%s = 0x%04X," % (op["name"], op["code"]), op["doc"], "    ")
    w("};")
    for r in spec["reserved_opcodes"]:
        emit(w, "#define CODEC_OP_RESERVED_%s_FIRST 0x%04Xu" % (r["name"], r["first"]), r["doc"])
        w("#define CODEC_OP_RESERVED_%s_LAST 0x%04Xu" % (r["name"], r["last"]))
    w("")
    w("/* ---- status codes: 0..63 are enum keel_err's numbers ------------------------------ */")
    w("enum codec_status {")
    for s in spec["statuses"]:
        w("    CODEC_S_%s = %d," % (s["name"], s["code"]))
    w("};")
    for s in spec["statuses"]:
        if "keel_err" in s:
            w('static_assert((int)CODEC_S_%s == (int)%s, "mirrors keel_err");'
              % (s["name"], s["keel_err"]))
    w('static_assert(KEEL_ERR_COUNT_ <= 64, "store errors must stay below 64");')
    w("")
    w("/* ---- feature bits and frame flags ------------------------------------------------ */")
    for f in spec["features"]:
        emit(w, "#define CODEC_FEATURE_%s (UINT64_C(1) << %d)" % (f["name"], f["bit"]), f["doc"])
    for f in spec["frame_flags"]:
        emit(w, "#define CODEC_FRAME_%s (1u << %d)" % (f["name"], f["bit"]), f["doc"])
    w("")
    w("/* ---- enums ------------------------------------------------------------------------ */")
    for name, e in spec["enums"].items():
        w("enum codec_%s {" % name)
        for i, v in enumerate(e["values"]):
            emit(w, "CODEC_%s_%s = %d," % (up(name), v["name"], i), v["doc"], "    ")
        w("    CODEC_%s_COUNT_ = %d," % (up(name), len(e["values"])))
        w("};")
    for mname, msg in spec["messages"].items():
        for f in msg["fields"]:
            for i, b in enumerate(f.get("bits", [])):
                w("#define CODEC_%s_%s (1u << %d)" % (up(mname), up(b), i))
    w("")


DESC_TYPES = """\
/* ---- descriptor types: the field tables below are data the codec walks ------------- */
enum codec_type {
    CODEC_T_BOOL,     /* u8, 0 or 1; C bool */
    CODEC_T_ENUM,     /* u8 < enm->count; reserved values are UNSUPPORTED */
    CODEC_T_FLAGS,    /* u8; only the enm->count low bits may be set */
    CODEC_T_U16,
    CODEC_T_STATUS16, /* u16 status code (any value decodes) */
    CODEC_T_U32,
    CODEC_T_U64,
    CODEC_T_I64,
    CODEC_T_BYTES16,  /* u16 length + bytes; struct span borrowing the input */
    CODEC_T_BYTES32,  /* u32 length + bytes */
    CODEC_T_LIST16,   /* u16 count + elements of msg; struct codec_list */
    CODEC_T_LIST32,   /* u32 count + elements of msg */
    CODEC_T_MSG,      /* msg inline */
    CODEC_T_SIZED,    /* u32 size + msg in that many bytes (trailing bytes ignored) */
};

#define CODEC_COND_NONE 0xFF

/* A validated list as it sits in the input: count elements back to back in raw (each
 * behind a u16 size when the field is sized). Walk it with codec_iter_*. */
struct codec_list {
    u32 count;
    struct span raw;
};

struct codec_enum_desc {
    const char *name;
    u8 count;                  /* values 0..count-1 (flags: bits 0..count-1) */
    const char *const *names;  /* per value, or per bit for flags */
    const u8 *reserved;        /* per value: 1 = reserved (UNSUPPORTED); NULL for flags */
};

struct codec_msg_desc;

struct codec_field_desc {
    const char *name;
    u8 type;        /* enum codec_type */
    u8 sized;       /* lists: each element behind a u16 size */
    u8 cond_field;  /* present only if field cond_field (earlier, u8) == cond_value */
    u8 cond_value;
    u8 cond_negate; /* ... or != cond_value when 1 */
    u16 offset;     /* of the member in the message struct */
    u16 min_status; /* status when below min */
    u16 max_status; /* status when above max */
    i64 min;        /* numbers: value; bytes: length; lists: count */
    u64 max;
    const struct codec_msg_desc *msg;   /* lists, msg, sized */
    const struct codec_enum_desc *enm;  /* enum, flags */
};

struct codec_msg_desc {
    const char *name;
    u16 size;   /* sizeof the struct */
    u8 fields_len;
    const struct codec_field_desc *fields;
};

struct codec_opcode_desc {
    u16 code;
    const char *name;
    const struct codec_msg_desc *request; /* NULL: clients never send it */
    const struct codec_msg_desc *reply;
};

struct codec_status_desc {
    u16 code;
    bool closes; /* the server closes the connection after this reply */
    const char *name;
    const char *message;
};

struct codec_limit_desc {
    const char *name;
    u64 value;
    u16 status; /* reported when the limit is passed */
};
"""


def gen_structs(spec, w):
    w("/* ---- messages: decoded spans and lists borrow the input bytes -------------------- */")
    for name in msg_order(spec):
        msg = spec["messages"][name]
        for part in textwrap.wrap(msg["doc"], 94):
            w("/* %s */" % part)
        w("struct codec_%s {" % name)
        if not msg["fields"]:
            w("    u8 empty_; /* C has no empty structs; never on the wire */")
        for f in msg["fields"]:
            w(c_member(f))
        w("};")
    w("")
    w("/* Any message: scratch room for decoding one element of any list. */")
    w("union codec_msg_any {")
    for name in msg_order(spec):
        w("    struct codec_%s %s;" % (name, name))
    w("};")
    w("")


def gen_externs(spec, w):
    for name in msg_order(spec):
        w("extern const struct codec_msg_desc codec_msg_%s;" % name)
    for name in spec["enums"]:
        w("extern const struct codec_enum_desc codec_enum_%s;" % name)
    w("extern const struct codec_opcode_desc codec_opcodes[%d];" % len(spec["opcodes"]))
    w("extern const struct codec_status_desc codec_statuses[%d];" % len(spec["statuses"]))
    w("extern const struct codec_limit_desc codec_limits[%d];" % len(spec["limits"]))
    w("")


def gen_field(spec, mname, msg, f, w):
    cond = cond_of(spec, msg, f)
    idx, val, neg = cond if cond else ("CODEC_COND_NONE", 0, False)
    enm = "NULL"
    if f["type"] == "enum":
        enm = "&codec_enum_%s" % f["enum"]
    elif f["type"] == "flags8":
        enm = "&codec_flags_%s_%s" % (mname, f["name"])
    sub = "&codec_msg_%s" % f["msg"] if "msg" in f else "NULL"
    w('    {"%s", %s, %d, %s, %d, %d,'
      % (f["name"], TYPES[f["type"]][2], 1 if f.get("sized") else 0, idx, val, 1 if neg else 0))
    w("     offsetof(struct codec_%s, %s), CODEC_S_%s, CODEC_S_%s,"
      % (mname, f["name"], f.get("min_status", "MALFORMED"), f.get("max_status", "MALFORMED")))
    w("     %s, %s, %s, %s}," % (bound_c(spec, f, "min"), bound_c(spec, f, "max"), sub, enm))


def gen_tables(spec, w):
    w("#ifdef CODEC_GEN_TABLES /* defined by net/codec.c alone: one copy of the data */")
    for name, e in spec["enums"].items():
        names = ", ".join('"%s"' % v["name"] for v in e["values"])
        res = ", ".join("1" if v.get("reserved") else "0" for v in e["values"])
        w("static const char *const codec_enum_%s_names[] = {%s};" % (name, names))
        w("static const u8 codec_enum_%s_reserved[] = {%s};" % (name, res))
        w("const struct codec_enum_desc codec_enum_%s = {" % name)
        w('    "%s", %d, codec_enum_%s_names, codec_enum_%s_reserved};'
          % (name, len(e["values"]), name, name))
    for mname, msg in spec["messages"].items():
        for f in msg["fields"]:
            if f["type"] != "flags8":
                continue
            n = "%s_%s" % (mname, f["name"])
            w("static const char *const codec_flags_%s_names[] = {%s};"
              % (n, ", ".join('"%s"' % b for b in f["bits"])))
            w("static const struct codec_enum_desc codec_flags_%s = {" % n)
            w('    "%s", %d, codec_flags_%s_names, NULL};' % (f["name"], len(f["bits"]), n))
    for name in msg_order(spec):
        msg = spec["messages"][name]
        if msg["fields"]:
            w("static const struct codec_field_desc codec_fields_%s[] = {" % name)
            for f in msg["fields"]:
                gen_field(spec, name, msg, f, w)
            w("};")
        fields = "codec_fields_%s" % name if msg["fields"] else "NULL"
        w('const struct codec_msg_desc codec_msg_%s = {"%s", sizeof(struct codec_%s), %d, %s};'
          % (name, name, name, len(msg["fields"]), fields))
    w("const struct codec_opcode_desc codec_opcodes[%d] = {" % len(spec["opcodes"]))
    for op in spec["opcodes"]:
        req = "&codec_msg_%s" % op["request"] if op["request"] else "NULL"
        w('    {CODEC_OP_%s, "%s", %s, &codec_msg_%s},'
          % (op["name"], op["name"], req, op["reply"]))
    w("};")
    w("const struct codec_status_desc codec_statuses[%d] = {" % len(spec["statuses"]))
    for s in spec["statuses"]:
        w('    {CODEC_S_%s, %s, "%s", "%s"},'
          % (s["name"], "true" if s["closes"] else "false", s["name"], s["message"]))
    w("};")
    w("const struct codec_limit_desc codec_limits[%d] = {" % len(spec["limits"]))
    for lim in spec["limits"]:
        w('    {"%s", CODEC_%s, CODEC_S_%s},' % (lim["name"], up(lim["name"]), lim["status"]))
    w("};")
    w("#endif /* CODEC_GEN_TABLES */")


def fold(line):
    """Breaks a line longer than 100 columns after a comma outside string literals, with the
    continuation indented 4 more columns; comments and preprocessor lines are left alone."""
    out = []
    while len(line) > 100 and not line.lstrip().startswith(("/*", "#")):
        cut, quoted = -1, False
        for i, ch in enumerate(line[:99]):
            if ch == '"' and line[i - 1] != "\\":
                quoted = not quoted
            elif ch == "," and not quoted and line[i + 1:i + 2] == " ":
                cut = i
        if cut < 0:
            break
        indent = len(line) - len(line.lstrip()) + 4
        out.append(line[:cut + 1])
        line = " " * indent + line[cut + 2:]
    out.append(line)
    return out


def gen_header(spec):
    lines = []
    w = lines.append
    w("/*")
    w(" * codec_gen.h — GENERATED by tools/gen_codec.py from proto-spec/messages.json.")
    w(" * Do not edit: change messages.json and run tools/gen_codec.py. The codec_spec_drift")
    w(" * test fails when this file, messages.json and proto-spec/protocol.md disagree.")
    w(" *")
    w(" * Holds the opcode, status, limit, feature and enum constants, the message structs")
    w(" * (decoded spans and lists borrow the input), and, under CODEC_GEN_TABLES, the field")
    w(" * tables net/codec.c walks to encode, decode and describe every message.")
    w(" */")
    w("// clang-format off")
    w("#ifndef KEEL_NET_CODEC_GEN_H")
    w("#define KEEL_NET_CODEC_GEN_H")
    w("")
    w('#include "core/assert.h"')
    w('#include "core/types.h"')
    w("")
    w("#include <stddef.h>")
    w("")
    gen_constants(spec, w)
    gen_enums(spec, w)
    lines.extend(DESC_TYPES.rstrip("\n").split("\n"))
    w("")
    gen_structs(spec, w)
    gen_externs(spec, w)
    gen_tables(spec, w)
    w("")
    w("#endif")
    w("// clang-format on")
    folded = [part for line in lines for part in fold(line)]
    return "\n".join(folded) + "\n"


# ---- markdown tables ---------------------------------------------------------------------


def fmt_code(c):
    return "0x%04X" % c


def tbl_opcodes(spec):
    rows = [["code", "name", "request body", "reply body", "meaning"]]
    for op in spec["opcodes"]:
        rows.append([fmt_code(op["code"]), "`%s`" % op["name"],
                     "`%s`" % op["request"] if op["request"] else "none (server only)",
                     "`%s`" % op["reply"], op["doc"]])
    return rows


def tbl_reserved_opcodes(spec):
    rows = [["first", "last", "range", "reserved for"]]
    for r in spec["reserved_opcodes"]:
        rows.append([fmt_code(r["first"]), fmt_code(r["last"]), r["name"], r["doc"]])
    return rows


def tbl_statuses(spec):
    rows = [["code", "name", "closes", "meaning", "what the client should do"]]
    for s in spec["statuses"]:
        rows.append([str(s["code"]), "`%s`" % s["name"], "yes" if s["closes"] else "no",
                     s["doc"], s["action"]])
    return rows


def tbl_status_ranges(spec):
    rows = [["first", "last", "use"]]
    for r in spec["status_ranges"]:
        rows.append([str(r["first"]), str(r["last"]), r["doc"]])
    return rows


def tbl_limits(spec):
    rows = [["name", "value", "in HELLO reply", "when passed", "what it bounds"]]
    for lim in spec["limits"]:
        rows.append(["`%s`" % lim["name"], str(lim["value"]),
                     "yes" if lim["advertised"] else "no", "`%s`" % lim["status"], lim["doc"]])
    return rows


def tbl_constants(spec):
    rows = [["name", "value", "meaning"]]
    for c in spec["constants"]:
        rows.append(["`%s`" % c["name"], str(c["value"]), c["doc"]])
    return rows


def tbl_bits(items):
    rows = [["bit", "name", "meaning"]]
    for f in items:
        rows.append([str(f["bit"]), "`%s`" % f["name"], f["doc"]])
    return rows


def tbl_enum(spec, name):
    rows = [["value", "name", "meaning"]]
    for i, v in enumerate(spec["enums"][name]["values"]):
        rows.append([str(i), "`%s`" % v["name"], v["doc"]])
    return rows


def encoding_of(f):
    t = f["type"]
    if t == "bool":
        return "u8 bool"
    if t == "enum":
        return "u8 enum `%s`" % f["enum"]
    if t == "flags8":
        return "u8 flags"
    if t == "status16":
        return "u16 status"
    if t in ("bytes16", "bytes32"):
        return "%s length + bytes" % ("u16" if t == "bytes16" else "u32")
    if t in ("list16", "list32"):
        elem = "(u16 size + `%s`)" % f["msg"] if f.get("sized") else "`%s`" % f["msg"]
        return "%s count + %s × count" % ("u16" if t == "list16" else "u32", elem)
    if t == "msg":
        return "`%s`" % f["msg"]
    if t == "sized":
        return "u32 size + `%s`" % f["msg"]
    return t


def rule_of(spec, msg, f):
    parts = []
    cond = f.get("if")
    if cond:
        op = "=" if "eq" in cond else "!="
        parts.append("present if %s %s %s" % (cond["field"], op, cond.get("eq", cond.get("ne"))))
    t = f["type"]
    if t == "flags8":
        parts.append("bits %d-7 set: MALFORMED" % len(f["bits"]))
    if t == "enum":
        values = spec["enums"][f["enum"]]["values"]
        for i, v in enumerate(values):
            if v.get("reserved"):
                parts.append("%d (%s): UNSUPPORTED" % (i, v["name"]))
        parts.append(">= %d: MALFORMED" % len(values))
    if t == "bool":
        parts.append(">= 2: MALFORMED")
    what = {"bytes16": "length", "bytes32": "length", "list16": "count", "list32": "count"}.get(t)
    lo, hi = f.get("min"), f.get("max")
    if lo is not None and lo == hi:
        parts.append("= 0x%08X else %s" % (lo, f["min_status"]))
    else:
        if lo is not None:
            parts.append("%s < %s: %s" % (what or "value", lo, f["min_status"]))
        if hi is not None:
            parts.append("%s > %s: %s" % (what or "value", hi, f["max_status"]))
    return "; ".join(parts) if parts else ""


def tbl_message(spec, name):
    """Byte table of a message. Offsets are shown while every field before is fixed; fields
    conditional on the same earlier field are alternatives, so they share one offset."""
    msg = spec["messages"][name]
    rows = [["offset", "field", "encoding", "rule", "meaning"]]
    off, group, group_off = 0, None, None
    for f in msg["fields"]:
        cond = f.get("if")
        if cond and cond["field"] == group:
            shown = group_off
        else:
            group, group_off, shown = (cond["field"] if cond else None), off, off
        rows.append([str(shown) if shown is not None else "—", f["name"], encoding_of(f),
                     rule_of(spec, msg, f), f["doc"]])
        size = TYPES[f["type"]][1]
        off = off + size if off is not None and size is not None and not cond else None
    return rows


def tbl_frame(spec):
    rows = [["offset", "field", "encoding", "meaning"]]
    off = 0
    for f in spec["frame"]["fields"]:
        rows.append([str(off), f["name"], f["type"], f["doc"]])
        off += TYPES[f["type"]][1]
    return rows


def all_tables(spec):
    """Ordered (marker name, rows) for every table protocol.md must carry."""
    t = [("frame", tbl_frame(spec)), ("frame_flags", tbl_bits(spec["frame_flags"])),
         ("opcodes", tbl_opcodes(spec)), ("reserved_opcodes", tbl_reserved_opcodes(spec)),
         ("statuses", tbl_statuses(spec)), ("status_ranges", tbl_status_ranges(spec)),
         ("limits", tbl_limits(spec)), ("constants", tbl_constants(spec)),
         ("features", tbl_bits(spec["features"]))]
    for name in spec["enums"]:
        t.append(("enum:" + name, tbl_enum(spec, name)))
    for name in spec["messages"]:
        t.append(("message:" + name, tbl_message(spec, name)))
    return t


def md_escape(cell):
    return cell.replace("|", "\\|")


def render_table(rows):
    out = ["| " + " | ".join(md_escape(c) for c in rows[0]) + " |",
           "|" + "|".join(" --- " for _ in rows[0]) + "|"]
    for r in rows[1:]:
        out.append("| " + " | ".join(md_escape(c) for c in r) + " |")
    return "\n".join(out)


# ---- protocol.md check ---------------------------------------------------------------------


def split_row(line):
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip().replace("\\|", "|") for c in cells]


def parse_md_tables(text):
    """{marker: rows}; a table is the run of '|' lines after its marker (blank lines skipped)."""
    found, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        m = re.match(r"\s*<!--\s*table:(\S+)\s*-->", lines[i])
        i += 1
        if not m:
            continue
        while i < len(lines) and not lines[i].strip():
            i += 1
        rows = []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            cells = split_row(lines[i])
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
            i += 1
        if m.group(1) in found:
            raise SystemExit("protocol.md: table %s appears twice" % m.group(1))
        found[m.group(1)] = rows
    return found


def write_md(spec):
    """Replaces the table after each marker of protocol.md with the generated one."""
    with open(PROTOCOL_MD, encoding="utf-8") as f:
        lines = f.read().split("\n")
    tables, out, i = dict(all_tables(spec)), [], 0
    while i < len(lines):
        out.append(lines[i])
        m = re.match(r"\s*<!--\s*table:(\S+)\s*-->", lines[i])
        i += 1
        if not m or m.group(1) not in tables:
            continue
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            i += 1
        out.extend(render_table(tables[m.group(1)]).split("\n"))
    with open(PROTOCOL_MD, "w", encoding="utf-8") as f:
        f.write("\n".join(out))


def check_md(spec):
    with open(PROTOCOL_MD, encoding="utf-8") as f:
        doc = parse_md_tables(f.read())
    want = dict(all_tables(spec))
    errors = []
    for name, rows in want.items():
        if name not in doc:
            errors.append("protocol.md lacks table %s (marker <!-- table:%s -->)" % (name, name))
            continue
        if doc[name] != rows:
            diff = difflib.unified_diff([" | ".join(r) for r in doc[name]],
                                        [" | ".join(r) for r in rows],
                                        "protocol.md " + name, "messages.json " + name, lineterm="")
            errors.append("\n".join(diff))
    for name in doc:
        if name not in want:
            errors.append("protocol.md has table %s that messages.json does not define" % name)
    return errors


def main(argv):
    spec = load()
    if "--tables" in argv:
        for name, rows in all_tables(spec):
            print("<!-- table:%s -->\n%s\n" % (name, render_table(rows)))
        return 0
    if "--write-md" in argv:
        write_md(spec)
        return 0
    text = gen_header(spec)
    if "--check" in argv:
        errors = []
        with open(HEADER, encoding="utf-8") as f:
            have = f.read()
        if have != text:
            diff = difflib.unified_diff(have.split("\n"), text.split("\n"),
                                        "net/codec_gen.h (committed)", "regenerated", lineterm="")
            errors.append("net/codec_gen.h is stale: run tools/gen_codec.py\n" + "\n".join(diff))
        errors.extend(check_md(spec))
        for e in errors:
            print(e, file=sys.stderr)
        print("codec_spec_drift: %d tables, header %s: %s"
              % (len(all_tables(spec)), "same" if have == text else "DIFFERS",
                 "FAILED" if errors else "ok"))
        return 1 if errors else 0
    with open(HEADER, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
