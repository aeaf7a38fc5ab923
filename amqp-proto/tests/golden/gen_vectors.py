#!/usr/bin/env python3
"""Generate golden AMQP 1.0 encoding vectors with python-qpid-proton.

Every vector's bytes come from proton: ``proton.Data.encode()`` for values and
``proton.Message.encode()`` for messages.  The JSON description of each vector
is NOT taken from what we passed to proton; it is rebuilt by decoding proton's
output with ``proton.Data.decode()`` and walking the resulting tree.  For value
vectors the walk is additionally cross-checked against the input spec.

Usage (from the repository root):

    python3 amqp-proto/tests/golden/gen_vectors.py          # (re)write vectors.json
    python3 amqp-proto/tests/golden/gen_vectors.py --check  # fail if vectors.json is stale
    python3 amqp-proto/tests/golden/gen_vectors.py --stdout # print instead of writing

The output is deterministic: no clocks, no random ids.
"""

import json
import math
import os
import struct
import sys
import uuid

import proton
from proton import Data, Message, Described, Array, UNDESCRIBED
from proton import symbol, ulong, char, timestamp, ubyte, ushort, uint, byte, short, int32, float32
from proton import decimal32, decimal64, decimal128

PROTON_VERSION = ".".join(str(x) for x in proton.VERSION)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PATH = os.path.join(HERE, "vectors.json")

# ---------------------------------------------------------------------------
# typed-JSON helpers (the vocabulary used in vectors.json)
# ---------------------------------------------------------------------------

TYPE_CODES = {
    "null": Data.NULL, "bool": Data.BOOL, "ubyte": Data.UBYTE, "ushort": Data.USHORT,
    "uint": Data.UINT, "ulong": Data.ULONG, "byte": Data.BYTE, "short": Data.SHORT,
    "int": Data.INT, "long": Data.LONG, "float": Data.FLOAT, "double": Data.DOUBLE,
    "decimal32": Data.DECIMAL32, "decimal64": Data.DECIMAL64, "decimal128": Data.DECIMAL128,
    "char": Data.CHAR, "timestamp": Data.TIMESTAMP, "uuid": Data.UUID, "binary": Data.BINARY,
    "string": Data.STRING, "symbol": Data.SYMBOL, "list": Data.LIST, "map": Data.MAP,
    "array": Data.ARRAY, "described": Data.DESCRIBED,
}
TYPE_NAMES = {v: k for k, v in TYPE_CODES.items()}


def N():
    return {"null": None}


def BOOL(v):
    return {"bool": bool(v)}


def UB(v):
    return {"ubyte": v}


def US(v):
    return {"ushort": v}


def UI(v):
    return {"uint": v}


def UL(v):
    return {"ulong": v}


def BY(v):
    return {"byte": v}


def SH(v):
    return {"short": v}


def I(v):
    return {"int": v}


def L(v):
    return {"long": v}


def F(x):
    """float from a Python number (rounded to binary32) or from an 8-hex-digit bit pattern."""
    if isinstance(x, str):
        assert len(x) == 8
        return {"float": x.lower()}
    return {"float": struct.pack(">f", x).hex()}


def D(x):
    if isinstance(x, str):
        assert len(x) == 16
        return {"double": x.lower()}
    return {"double": struct.pack(">d", x).hex()}


def D32(h):
    return {"decimal32": h}


def D64(h):
    return {"decimal64": h}


def D128(h):
    return {"decimal128": h}


def CH(cp):
    return {"char": cp if isinstance(cp, int) else ord(cp)}


def TS(ms):
    return {"timestamp": ms}


def UU(s):
    return {"uuid": uuid.UUID(s).hex}


def BIN(b):
    return {"binary": bytes(b).hex()}


def S(s):
    return {"string": s}


def SYM(s):
    return {"symbol": s}


def LIST(*items):
    return {"list": list(items)}


def MAP(*pairs):
    return {"map": [[k, v] for k, v in pairs]}


def ARR(typ, elements, descriptor=None):
    return {"array": {"descriptor": descriptor, "type": typ, "elements": list(elements)}}


def DESC(descriptor, value):
    return {"described": {"descriptor": descriptor, "value": value}}


def tkey(t):
    assert isinstance(t, dict) and len(t) == 1, t
    return next(iter(t))


# ---------------------------------------------------------------------------
# put: typed JSON -> proton.Data via the put_* API
# ---------------------------------------------------------------------------

def put(d, t):
    k = tkey(t)
    v = t[k]
    if k == "null":
        d.put_null()
    elif k == "bool":
        d.put_bool(v)
    elif k in ("ubyte", "ushort", "uint", "ulong", "byte", "short", "int", "long", "timestamp"):
        getattr(d, "put_" + k)(v)
    elif k == "float":
        d.put_float(struct.unpack(">f", bytes.fromhex(v))[0])
    elif k == "double":
        d.put_double(struct.unpack(">d", bytes.fromhex(v))[0])
    elif k == "decimal32":
        d.put_decimal32(decimal32(int(v, 16)))
    elif k == "decimal64":
        d.put_decimal64(decimal64(int(v, 16)))
    elif k == "decimal128":
        d.put_decimal128(decimal128(bytes.fromhex(v)))
    elif k == "char":
        d.put_char(char(chr(v)))
    elif k == "uuid":
        d.put_uuid(uuid.UUID(hex=v))
    elif k == "binary":
        d.put_binary(bytes.fromhex(v))
    elif k == "string":
        d.put_string(v)
    elif k == "symbol":
        d.put_symbol(symbol(v))
    elif k == "list":
        d.put_list()
        d.enter()
        for e in v:
            put(d, e)
        d.exit()
    elif k == "map":
        d.put_map()
        d.enter()
        for kk, vv in v:
            put(d, kk)
            put(d, vv)
        d.exit()
    elif k == "array":
        desc = v["descriptor"]
        d.put_array(desc is not None, TYPE_CODES[v["type"]])
        d.enter()
        if desc is not None:
            put(d, desc)
        for e in v["elements"]:
            assert tkey(e) == v["type"], (e, v["type"])
            put(d, e)
        d.exit()
    elif k == "described":
        d.put_described()
        d.enter()
        put(d, v["descriptor"])
        put(d, v["value"])
        d.exit()
    else:
        raise ValueError(k)


# ---------------------------------------------------------------------------
# walk: proton.Data (current node) -> typed JSON
# ---------------------------------------------------------------------------

def walk(d):
    t = d.type()
    if t is None:
        raise ValueError("no current node")
    name = TYPE_NAMES[t]
    if t == Data.NULL:
        return {"null": None}
    if t == Data.BOOL:
        return {"bool": bool(d.get_bool())}
    if t in (Data.UBYTE, Data.USHORT, Data.UINT, Data.ULONG, Data.BYTE, Data.SHORT,
             Data.INT, Data.LONG, Data.TIMESTAMP):
        return {name: int(getattr(d, "get_" + name)())}
    if t == Data.FLOAT:
        return {"float": struct.pack(">f", d.get_float()).hex()}
    if t == Data.DOUBLE:
        return {"double": struct.pack(">d", d.get_double()).hex()}
    if t == Data.DECIMAL32:
        return {"decimal32": "%08x" % (int(d.get_decimal32()) & 0xFFFFFFFF)}
    if t == Data.DECIMAL64:
        return {"decimal64": "%016x" % (int(d.get_decimal64()) & 0xFFFFFFFFFFFFFFFF)}
    if t == Data.DECIMAL128:
        b = bytes(d.get_decimal128())
        assert len(b) == 16
        return {"decimal128": b.hex()}
    if t == Data.CHAR:
        c = d.get_char()
        assert len(c) == 1
        return {"char": ord(c)}
    if t == Data.UUID:
        return {"uuid": d.get_uuid().hex}
    if t == Data.BINARY:
        return {"binary": bytes(d.get_binary()).hex()}
    if t == Data.STRING:
        return {"string": str(d.get_string())}
    if t == Data.SYMBOL:
        return {"symbol": str(d.get_symbol())}
    if t == Data.LIST:
        n = d.get_list()
        items = []
        d.enter()
        for _ in range(n):
            assert d.next() is not None
            items.append(walk(d))
        assert d.next() is None
        d.exit()
        return {"list": items}
    if t == Data.MAP:
        n = d.get_map()
        assert n % 2 == 0
        pairs = []
        d.enter()
        for _ in range(n // 2):
            assert d.next() is not None
            kk = walk(d)
            assert d.next() is not None
            vv = walk(d)
            pairs.append([kk, vv])
        assert d.next() is None
        d.exit()
        return {"map": pairs}
    if t == Data.ARRAY:
        count, described, atype = d.get_array()
        tname = TYPE_NAMES[atype]
        d.enter()
        desc = None
        if described:
            assert d.next() is not None
            desc = walk(d)
        elems = []
        for _ in range(count):
            assert d.next() is not None
            e = walk(d)
            assert tkey(e) == tname, (e, tname)
            elems.append(e)
        assert d.next() is None
        d.exit()
        return {"array": {"descriptor": desc, "type": tname, "elements": elems}}
    if t == Data.DESCRIBED:
        d.enter()
        assert d.next() is not None
        desc = walk(d)
        assert d.next() is not None
        val = walk(d)
        assert d.next() is None
        d.exit()
        return {"described": {"descriptor": desc, "value": val}}
    raise ValueError("unhandled type %r" % t)


def decode_one(b):
    """Decode exactly one value that must span all of b; return typed JSON."""
    d = Data()
    n = d.decode(b)
    assert n == len(b), (n, len(b))
    d.rewind()
    assert d.next() is not None
    t = walk(d)
    assert d.next() is None
    return t


def encode_typed(t):
    d = Data()
    put(d, t)
    return d.encode()


# ---------------------------------------------------------------------------
# value vectors
# ---------------------------------------------------------------------------

VECTORS = []
NAMES = set()


def add_vector(v):
    assert v["name"] not in NAMES, v["name"]
    NAMES.add(v["name"])
    VECTORS.append(v)


def wire_scalar_check(t, b):
    """Extra paranoia for fixed-width scalars: compare the payload bytes to the bit patterns."""
    k = tkey(t)
    fixed = {"float": 0x72, "double": 0x82, "decimal32": 0x74, "decimal64": 0x84,
             "decimal128": 0x94, "uuid": 0x98}
    if k in fixed:
        assert b[0] == fixed[k], (t, b.hex())
        assert b[1:].hex() == t[k], (t, b.hex())
    if k == "char":
        assert b == b"\x73" + struct.pack(">I", t[k]), (t, b.hex())
    if k == "timestamp":
        assert b == b"\x83" + struct.pack(">q", t[k]), (t, b.hex())


def value(name, t):
    b = encode_typed(t)
    scan_codes(b)  # structural sanity check independent of proton
    back = decode_one(b)
    assert back == t, "round-trip mismatch for %s:\n put  %r\n walk %r" % (name, t, back)
    wire_scalar_check(back, b)
    # the bytes must also re-encode identically after a decode (proton is canonical w.r.t. itself)
    d = Data()
    d.decode(b)
    assert d.encode() == b, name
    add_vector({"name": "value_" + name, "kind": "value", "hex": b.hex(), "value": back})


def value_obj(name, obj, expect=None):
    """A value produced through proton's Python object mapping (put_object)."""
    d = Data()
    d.put_object(obj)
    b = d.encode()
    back = decode_one(b)
    if expect is not None:
        assert back == expect, (name, back, expect)
    add_vector({"name": "value_" + name, "kind": "value", "hex": b.hex(), "value": back})


def gen_values():
    # null / bool
    value("null", N())
    value("bool_true", BOOL(True))
    value("bool_false", BOOL(False))

    # unsigned
    for v in (0, 1, 127, 128, 255):
        value("ubyte_%d" % v, UB(v))
    for v in (0, 1, 255, 256, 65535):
        value("ushort_%d" % v, US(v))
    for v in (0, 1, 255, 256, 65535, 65536, 2**31, 2**32 - 1):
        value("uint_%d" % v, UI(v))
    for v in (0, 1, 255, 256, 2**32 - 1, 2**32, 2**53 + 1, 2**63, 2**64 - 1):
        value("ulong_%d" % v, UL(v))

    # signed
    def sname(v):
        return ("m%d" % -v) if v < 0 else "%d" % v
    for v in (-128, -1, 0, 1, 127):
        value("byte_" + sname(v), BY(v))
    for v in (-32768, -129, -128, -1, 0, 127, 128, 32767):
        value("short_" + sname(v), SH(v))
    for v in (-2**31, -129, -128, -1, 0, 1, 127, 128, 2**31 - 1):
        value("int_" + sname(v), I(v))
    for v in (-2**63, -2**31 - 1, -2**31, -129, -128, -1, 0, 1, 127, 128, 2**31 - 1, 2**31, 2**63 - 1):
        value("long_" + sname(v), L(v))

    # float (binary32); bit patterns given explicitly where it matters
    for nm, bits in (
            ("zero", "00000000"), ("neg_zero", "80000000"), ("one_point_five", "3fc00000"),
            ("minus_one_point_five", "bfc00000"), ("one", "3f800000"),
            ("inf", "7f800000"), ("neg_inf", "ff800000"), ("nan", "7fc00000"), ("neg_nan", "ffc00000"),
            ("min_subnormal", "00000001"), ("max_subnormal", "007fffff"), ("min_normal", "00800000"),
            ("max", "7f7fffff"), ("lowest", "ff7fffff"), ("pi", "40490fdb")):
        value("float_" + nm, F(bits))
    # double (binary64)
    for nm, bits in (
            ("zero", "0000000000000000"), ("neg_zero", "8000000000000000"),
            ("one_point_five", "3ff8000000000000"), ("minus_one_point_five", "bff8000000000000"),
            ("inf", "7ff0000000000000"), ("neg_inf", "fff0000000000000"),
            ("nan", "7ff8000000000000"), ("neg_nan", "fff8000000000000"),
            ("nan_payload", "7ff8000000000001"),
            ("min_subnormal", "0000000000000001"), ("max_subnormal", "000fffffffffffff"),
            ("min_normal", "0010000000000000"), ("max", "7fefffffffffffff"), ("lowest", "ffefffffffffffff"),
            ("pi", "400921fb54442d18"), ("zero_point_one", "3fb999999999999a"),
            ("two_pow_53", "4340000000000000")):
        value("double_" + nm, D(bits))

    # decimals: opaque bit patterns (proton does no decimal arithmetic)
    for nm, h in (("zero_bits", "00000000"), ("plus_zero_e0", "22500000"), ("one_e0", "22500001"),
                  ("pattern", "12345678"), ("all_ones", "ffffffff")):
        value("decimal32_" + nm, D32(h))
    for nm, h in (("zero_bits", "0000000000000000"), ("plus_zero_e0", "2238000000000000"),
                  ("one_e0", "2238000000000001"), ("pattern", "1234567890abcdef"),
                  ("all_ones", "ffffffffffffffff")):
        value("decimal64_" + nm, D64(h))
    for nm, h in (("zero_bits", "00" * 16), ("plus_zero_e0", "22080000000000000000000000000000"),
                  ("one_e0", "22080000000000000000000000000001"),
                  ("pattern", "000102030405060708090a0b0c0d0e0f"), ("all_ones", "ff" * 16)):
        value("decimal128_" + nm, D128(h))

    # char (UTF-32 code points)
    for nm, cp in (("nul", 0), ("ascii_A", 0x41), ("del", 0x7F), ("latin1_e_acute", 0xE9),
                   ("two_byte_max", 0x7FF), ("euro", 0x20AC), ("bmp_max_ffff", 0xFFFF),
                   ("astral_grinning_face", 0x1F600), ("max_10ffff", 0x10FFFF)):
        value("char_" + nm, CH(cp))

    # timestamp (ms since epoch, signed 64)
    for nm, ms in (("zero", 0), ("one", 1), ("minus_one", -1), ("spec_example", 1311704463521),
                   ("y2038_plus", 2**31 * 1000), ("year_0001", -62135596800000),
                   ("max", 2**63 - 1), ("min", -2**63)):
        value("timestamp_" + nm, TS(ms))

    # uuid
    for nm, s in (("nil", "00000000-0000-0000-0000-000000000000"),
                  ("pattern", "00112233-4455-6677-8899-aabbccddeeff"),
                  ("v4_fixed", "f47ac10b-58cc-4372-a567-0e02b2c3d479"),
                  ("max", "ffffffff-ffff-ffff-ffff-ffffffffffff")):
        value("uuid_" + nm, UU(s))

    # binary: vbin8 (<=255) vs vbin32
    value("binary_empty", BIN(b""))
    value("binary_1_zero", BIN(b"\x00"))
    value("binary_3", BIN(b"\x01\x02\xff"))
    value("binary_255", BIN(bytes(i & 0xFF for i in range(255))))
    value("binary_256_all_byte_values", BIN(bytes(range(256))))
    value("binary_300", BIN(bytes((i * 7) & 0xFF for i in range(300))))
    value("binary_70000", BIN(bytes((i * 13) & 0xFF for i in range(70000))))

    # string: str8 (<=255 bytes of UTF-8) vs str32
    value("string_empty", S(""))
    value("string_a", S("a"))
    value("string_hello_world", S("hello world"))
    value("string_nul_inside", S("a\x00b"))
    value("string_latin1", S("h\u00e9llo w\u00f6rld"))
    value("string_cjk", S("\u65e5\u672c\u8a9e"))
    value("string_emoji", S("\U0001F600"))
    value("string_mixed_widths", S("a\u00e9\u20ac\U0001F600z"))
    value("string_255_ascii", S("x" * 255))
    value("string_256_ascii", S("y" * 256))
    value("string_127_chars_254_bytes", S("\u00e9" * 127))
    value("string_128_chars_256_bytes", S("\u00e9" * 128))
    value("string_1000", S("".join(chr(0x61 + (i % 26)) for i in range(1000))))

    # symbol: sym8 vs sym32
    value("symbol_empty", SYM(""))
    value("symbol_a", SYM("a"))
    value("symbol_amqp_accepted", SYM("amqp:accepted:list"))
    value("symbol_x_opt", SYM("x-opt-jms-dest"))
    value("symbol_255", SYM("s" * 255))
    value("symbol_256", SYM("t" * 256))
    value("symbol_300", SYM("".join(chr(0x41 + (i % 26)) for i in range(300))))

    # lists
    value("list_empty", LIST())
    value("list_one_null", LIST(N()))
    value("list_one_int", LIST(I(1)))
    value("list_bools", LIST(BOOL(True), BOOL(False)))
    value("list_small_ints", LIST(I(0), I(1), I(-1), I(127), I(128)))
    value("list_heterogeneous", LIST(
        N(), BOOL(True), UB(7), US(300), UI(0), UI(5), UI(70000), UL(0), UL(9), UL(2**40),
        BY(-5), SH(-300), I(-1), I(100000), L(-2), L(2**40), F(1.5), D(-2.25), D32("22500001"),
        D64("2238000000000001"), D128("22080000000000000000000000000001"), CH(0x1F600), TS(1311704463521),
        UU("f47ac10b-58cc-4372-a567-0e02b2c3d479"), BIN(b"\xde\xad\xbe\xef"), S("str"), SYM("sym")))
    value("list_nested", LIST(LIST(), LIST(LIST()), LIST(I(1), LIST(I(2), LIST(I(3))))))
    value("list_of_lists", LIST(*[LIST(I(i), S("e%d" % i)) for i in range(5)]))
    value("list_big_200_ints", LIST(*[I(i * 1000) for i in range(200)]))
    value("list_big_long_string", LIST(S("z" * 300), I(1)))
    value("list_260_nulls", LIST(*[N() for _ in range(260)]))
    value("list_with_map_array_described", LIST(
        MAP([SYM("k"), I(1)]), ARR("int", [I(1), I(2)]), DESC(UL(0x24), LIST())))
    value("list_with_empty_string_and_binary", LIST(S(""), BIN(b""), SYM("")))

    # maps
    value("map_empty", MAP())
    value("map_string_int", MAP([S("a"), I(1)]))
    value("map_symbol_keys", MAP([SYM("x-opt-a"), S("v")], [SYM("x-opt-b"), L(2)], [SYM("x-opt-c"), N()]))
    value("map_ulong_keys", MAP([UL(0), BOOL(True)], [UL(1), BOOL(False)], [UL(2**64 - 1), S("max")]))
    value("map_int_keys", MAP([I(-1), S("neg")], [I(0), S("zero")], [I(1000), S("k")]))
    value("map_various_keys", MAP(
        [N(), S("null-key")], [BOOL(True), S("bool-key")], [UB(1), S("ubyte-key")], [L(-7), S("long-key")],
        [BIN(b"\x00\x01"), S("binary-key")], [UU("00112233-4455-6677-8899-aabbccddeeff"), S("uuid-key")],
        [CH("k"), S("char-key")], [TS(1000), S("ts-key")], [D(0.5), S("double-key")],
        [S("s"), S("string-key")], [SYM("y"), S("symbol-key")],
        [LIST(I(1)), S("list-key")], [MAP([S("m"), N()]), S("map-key")]))
    value("map_nested", MAP([S("outer"), MAP([S("inner"), MAP([S("deepest"), I(3)])])], [S("empty"), MAP()]))
    value("map_with_list_values", MAP([S("l"), LIST(I(1), I(2))], [S("e"), LIST()], [S("a"), ARR("symbol", [SYM("q")])]))
    value("map_big_50_entries", MAP(*[[S("key-%02d" % i), L(i * i)] for i in range(50)]))
    value("map_big_value", MAP([SYM("blob"), BIN(bytes(range(256)) + bytes(range(44)))]))

    # arrays
    value("array_int", ARR("int", [I(1), I(-1), I(127), I(128), I(-2**31), I(2**31 - 1)]))
    value("array_int_one", ARR("int", [I(42)]))
    value("array_int_empty", ARR("int", []))
    value("array_uint", ARR("uint", [UI(0), UI(1), UI(255), UI(256), UI(2**32 - 1)]))
    value("array_uint_zeros", ARR("uint", [UI(0), UI(0)]))
    value("array_ulong", ARR("ulong", [UL(0), UL(1), UL(255), UL(256), UL(2**64 - 1)]))
    value("array_long", ARR("long", [L(0), L(-1), L(2**63 - 1), L(-2**63)]))
    value("array_ubyte", ARR("ubyte", [UB(0), UB(255)]))
    value("array_byte", ARR("byte", [BY(-128), BY(127)]))
    value("array_ushort", ARR("ushort", [US(0), US(65535)]))
    value("array_short", ARR("short", [SH(-32768), SH(32767)]))
    value("array_bool", ARR("bool", [BOOL(True), BOOL(False), BOOL(True)]))
    value("array_float", ARR("float", [F("3fc00000"), F("7f800000"), F("80000000")]))
    value("array_double", ARR("double", [D(1.5), D("fff0000000000000"), D("0000000000000001")]))
    value("array_decimal32", ARR("decimal32", [D32("22500001"), D32("00000000")]))
    value("array_decimal64", ARR("decimal64", [D64("2238000000000001")]))
    value("array_decimal128", ARR("decimal128", [D128("22080000000000000000000000000001")]))
    value("array_char", ARR("char", [CH("a"), CH(0x20AC), CH(0x1F600)]))
    value("array_timestamp", ARR("timestamp", [TS(0), TS(-1), TS(1311704463521)]))
    value("array_uuid", ARR("uuid", [UU("00112233-4455-6677-8899-aabbccddeeff"),
                                     UU("f47ac10b-58cc-4372-a567-0e02b2c3d479")]))
    value("array_uuid_empty", ARR("uuid", []))
    value("array_binary", ARR("binary", [BIN(b""), BIN(b"\x01"), BIN(bytes(range(256)) + bytes(range(44)))]))
    value("array_symbol", ARR("symbol", [SYM("amqp:accepted:list"), SYM("amqp:rejected:list"), SYM("")]))
    value("array_symbol_one", ARR("symbol", [SYM("ANONYMOUS-RELAY")]))
    value("array_symbol_empty", ARR("symbol", []))
    value("array_string", ARR("string", [S("a"), S(""), S("\u00e9\U0001F600")]))
    value("array_string_empty", ARR("string", []))
    value("array_null", ARR("null", [N(), N(), N()]))
    value("array_of_lists", ARR("list", [LIST(I(1)), LIST(), LIST(S("x"), N())]))
    value("array_of_maps", ARR("map", [MAP([S("a"), I(1)]), MAP()]))
    value("array_of_arrays", ARR("array", [ARR("int", [I(1)]), ARR("int", [I(2), I(3)])]))
    value("array_of_arrays_mixed_types", ARR("array", [ARR("symbol", [SYM("a")]), ARR("long", [L(5)])]))
    value("array_big_300_ints", ARR("int", [I(i) for i in range(300)]))
    value("array_described_ulong_list", ARR("list", [LIST(I(1), S("a")), LIST()], descriptor=UL(0x24)))
    value("array_described_symbol_string", ARR("string", [S("x"), S("y")], descriptor=SYM("com.example:name")))
    value("array_described_int", ARR("int", [I(1), I(2)], descriptor=UL(1)))
    value("array_described_empty", ARR("int", [], descriptor=UL(7)))
    # (An array whose descriptor is itself a described value is encoded by proton but its own
    # decoder rejects it, so it is deliberately not included.)
    value("array_described_map", ARR("map", [MAP([SYM("k"), UI(1)])], descriptor=UL(0x0000468C00000001)))

    # described values
    value("described_ulong_null", DESC(UL(0x70), N()))
    value("described_ulong_empty_list", DESC(UL(0x70), LIST()))
    value("described_ulong_list_open_like", DESC(UL(0x10), LIST(
        S("container-1"), S("host"), UI(512), US(65535), N(), N(), N(), ARR("symbol", [SYM("cap")]))))
    value("described_symbol_string", DESC(SYM("amqp:accepted:list"), LIST()))
    value("described_symbol_binary", DESC(SYM("com.example:blob"), BIN(b"\x01\x02")))
    value("described_domain_ulong", DESC(UL(0x0000468C00000001), S("domain-descriptor")))
    value("described_ulong_max", DESC(UL(2**64 - 1), I(0)))
    value("described_ulong_zero", DESC(UL(0), BOOL(True)))
    value("described_nested", DESC(UL(1), DESC(UL(2), DESC(SYM("three"), S("inner")))))
    value("described_map_value", DESC(UL(0x74), MAP([S("k"), S("v")])))
    value("described_array_value", DESC(UL(0x77), ARR("ulong", [UL(1), UL(2)])))
    value("described_descriptor_is_string", DESC(S("string-descriptor"), N()))

    # deep nesting
    t = I(20)
    for _ in range(20):
        t = LIST(t)
    value("deep_list_20", t)
    t = LIST()
    for _ in range(20):
        t = LIST(t)
    value("deep_list_20_empty_innermost", t)
    t = S("leaf")
    for i in range(20):
        t = MAP([S("l%d" % i), t])
    value("deep_map_20", t)
    t = N()
    for i in range(10):
        t = DESC(UL(i), t)
    value("deep_described_10", t)
    t = ARR("int", [I(1)])
    for _ in range(5):
        t = ARR("array", [t])
    value("deep_array_6", t)
    t = S("x")
    for i in range(10):
        t = LIST(MAP([SYM("k%d" % i), t]), ARR("int", [I(i)]))
    value("deep_mixed_10", t)

    # A few values through proton's Python object mapping, to pin down what the Python
    # binding chooses for plain Python types (int -> long, float -> double, str -> string).
    value_obj("pyobj_int_is_long", 7, L(7))
    value_obj("pyobj_float_is_double", 1.5, D(1.5))
    value_obj("pyobj_str_is_string", "s", S("s"))
    value_obj("pyobj_bytes_is_binary", b"b", BIN(b"b"))
    value_obj("pyobj_dict", {symbol("a"): 1, "b": [True, None]},
              MAP([SYM("a"), L(1)], [S("b"), LIST(BOOL(True), N())]))
    value_obj("pyobj_described", Described(symbol("x"), ulong(3)), DESC(SYM("x"), UL(3)))
    value_obj("pyobj_array_symbol", Array(UNDESCRIBED, Data.SYMBOL, symbol("a"), symbol("b")),
              ARR("symbol", [SYM("a"), SYM("b")]))


# ---------------------------------------------------------------------------
# message vectors
# ---------------------------------------------------------------------------

SECTION_CODES = {
    0x70: "header", 0x71: "delivery_annotations", 0x72: "message_annotations", 0x73: "properties",
    0x74: "application_properties", 0x75: "data", 0x76: "sequence", 0x77: "value", 0x78: "footer",
}
SECTION_SYMBOLS = {
    "amqp:header:list": 0x70, "amqp:delivery-annotations:map": 0x71,
    "amqp:message-annotations:map": 0x72, "amqp:properties:list": 0x73,
    "amqp:application-properties:map": 0x74, "amqp:data:binary": 0x75,
    "amqp:amqp-sequence:list": 0x76, "amqp:amqp-value:*": 0x77, "amqp:footer:map": 0x78,
}
SECTION_ORDER = {0x70: 0, 0x71: 1, 0x72: 2, 0x73: 3, 0x74: 4, 0x75: 5, 0x76: 5, 0x77: 5, 0x78: 6}

HEADER_FIELDS = [("durable", "bool"), ("priority", "ubyte"), ("ttl", "uint"),
                 ("first_acquirer", "bool"), ("delivery_count", "uint")]
PROPERTIES_FIELDS = [
    ("message_id", "*msgid"), ("user_id", "binary"), ("to", "string"), ("subject", "string"),
    ("reply_to", "string"), ("correlation_id", "*msgid"), ("content_type", "symbol"),
    ("content_encoding", "symbol"), ("absolute_expiry_time", "timestamp"), ("creation_time", "timestamp"),
    ("group_id", "string"), ("group_sequence", "uint"), ("reply_to_group_id", "string")]


def split_sections(b):
    """Decode b as a sequence of described sections: [(code, typed value, raw bytes)]."""
    out = []
    off = 0
    while off < len(b):
        d = Data()
        n = d.decode(b[off:])
        assert n > 0
        raw = b[off:off + n]
        off += n
        d.rewind()
        assert d.next() == Data.DESCRIBED
        t = walk(d)
        assert d.next() is None
        desc = t["described"]["descriptor"]
        if tkey(desc) == "ulong":
            code = desc["ulong"]
        elif tkey(desc) == "symbol":
            code = SECTION_SYMBOLS[desc["symbol"]]
        else:
            raise AssertionError("bad section descriptor %r" % desc)
        assert code in SECTION_CODES, hex(code)
        out.append((code, t["described"]["value"], raw))
    assert off == len(b)
    return out


def list_fields(val, spec, what):
    assert tkey(val) == "list", (what, val)
    items = val["list"]
    assert len(items) <= len(spec), (what, items)
    res = {}
    for i, (fname, ftype) in enumerate(spec):
        t = items[i] if i < len(items) else N()
        if tkey(t) == "null":
            res[fname] = None
            continue
        if ftype == "*msgid":
            assert tkey(t) in ("ulong", "uuid", "binary", "string"), (what, fname, t)
            res[fname] = t
            continue
        assert tkey(t) == ftype, (what, fname, t, ftype)
        v = t[ftype]
        res[fname] = v  # ints stay ints, bool stays bool, binary is hex, strings/symbols are text
    return res


def map_pairs(val, what):
    assert tkey(val) == "map", (what, val)
    return val["map"]


def describe_message(b):
    secs = split_sections(b)
    msg = {"header": None, "delivery_annotations": None, "message_annotations": None,
           "properties": None, "application_properties": None, "body": None, "footer": None}
    last = -1
    body_kind = None
    for code, val, _raw in secs:
        order = SECTION_ORDER[code]
        assert order >= last, "section order"
        if order == last and order != 5:
            raise AssertionError("duplicate section 0x%x" % code)
        last = order
        name = SECTION_CODES[code]
        if name == "header":
            msg["header"] = list_fields(val, HEADER_FIELDS, name)
        elif name == "properties":
            msg["properties"] = list_fields(val, PROPERTIES_FIELDS, name)
        elif name in ("delivery_annotations", "message_annotations", "footer"):
            pairs = map_pairs(val, name)
            for k, _ in pairs:
                assert tkey(k) in ("symbol", "ulong"), (name, k)
            msg[name] = pairs
        elif name == "application_properties":
            pairs = map_pairs(val, name)
            out = []
            for k, v in pairs:
                assert tkey(k) == "string", (name, k)
                out.append([k["string"], v])
            msg[name] = out
        elif name == "data":
            assert tkey(val) == "binary"
            assert body_kind in (None, "data")
            body_kind = "data"
            msg["body"] = msg["body"] or {"data": []}
            msg["body"]["data"].append(val["binary"])
        elif name == "sequence":
            assert tkey(val) == "list"
            assert body_kind in (None, "sequence")
            body_kind = "sequence"
            msg["body"] = msg["body"] or {"sequence": []}
            msg["body"]["sequence"].append(val["list"])
        elif name == "value":
            assert body_kind is None
            body_kind = "value"
            msg["body"] = {"value": val}
    return msg


MSG_ATTRS = ("inferred", "durable", "priority", "ttl", "first_acquirer", "delivery_count", "id",
             "user_id", "address", "subject", "reply_to", "correlation_id", "content_type",
             "content_encoding", "expiry_time", "creation_time", "group_id", "group_sequence",
             "reply_to_group_id", "instructions", "annotations", "properties", "body")


def message(name, check=None, **kwargs):
    m = Message(**kwargs)
    b = m.encode()
    desc = describe_message(b)
    scan_codes(b)
    # proton must be able to decode its own output, and re-encoding must be byte-identical
    m2 = Message()
    m2.decode(b)
    for a in MSG_ATTRS:
        assert getattr(m2, a) == getattr(m, a) or a == "inferred", (name, a, getattr(m2, a), getattr(m, a))
    m2.inferred = m.inferred
    assert m2.encode() == b, name
    if check is not None:
        check(desc)
    add_vector({"name": "message_" + name, "kind": "message", "hex": b.hex(), "message": desc})
    return b


def composed_message(name, b, check=None):
    """Bytes assembled from proton-encoded pieces (for sections the Python Message API cannot emit)."""
    desc = describe_message(b)
    scan_codes(b)
    m2 = Message()
    m2.decode(b)  # proton's decoder must accept it
    if check is not None:
        check(desc)
    add_vector({"name": "message_" + name, "kind": "message", "hex": b.hex(), "message": desc})


def section_bytes(code, t):
    return encode_typed(DESC(UL(code), t))


FIXED_UUID = uuid.UUID("f47ac10b-58cc-4372-a567-0e02b2c3d479")
FIXED_UUID2 = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")


def expect(path, want):
    def chk(desc):
        cur = desc
        for p in path:
            cur = cur[p]
        assert cur == want, (path, cur, want)
    return chk


def ensure(pred, what):
    def chk(desc):
        assert pred(desc), what
    return chk


def gen_messages():
    message("empty")
    message("body_string", body="hello", check=expect(["body"], {"value": S("hello")}))
    message("body_string_empty", body="")
    message("body_string_1000", body="".join(chr(0x41 + i % 26) for i in range(1000)))
    message("body_binary_as_value", body=b"\x00\x01\xff",
            check=expect(["body"], {"value": BIN(b"\x00\x01\xff")}))
    message("body_data", body=b"\x00\x01\x02\xfe\xff", inferred=True,
            check=expect(["body"], {"data": ["000102feff"]}))
    message("body_data_empty", body=b"", inferred=True, check=expect(["body"], {"data": [""]}))
    message("body_data_300", body=bytes(i & 0xFF for i in range(300)), inferred=True)
    message("body_sequence", body=[1, "two", symbol("three"), None], inferred=True,
            check=expect(["body"], {"sequence": [[L(1), S("two"), SYM("three"), N()]]}))
    message("body_sequence_empty", body=[], inferred=True, check=expect(["body"], {"sequence": [[]]}))
    message("body_value_list", body=[1, 2, 3], check=expect(["body"], {"value": LIST(L(1), L(2), L(3))}))
    message("body_value_map", body={"a": 1, symbol("b"): [True, 2.5], ulong(3): None})
    message("body_value_int", body=int32(42), check=expect(["body"], {"value": I(42)}))
    message("body_value_long", body=42, check=expect(["body"], {"value": L(42)}))
    message("body_value_double", body=0.5)
    message("body_value_bool_false", body=False, check=expect(["body"], {"value": BOOL(False)}))
    message("body_value_uuid", body=FIXED_UUID)
    message("body_value_described", body=Described(symbol("com.example:t"), [ulong(1), "x"]))
    message("body_value_array", body=Array(UNDESCRIBED, Data.INT, int32(1), int32(2)))
    message("body_none_no_body_section", body=None, check=expect(["body"], None))

    # header
    message("header_durable", durable=True, check=expect(["header", "durable"], True))
    message("header_all", durable=True, priority=9, ttl=60, first_acquirer=True, delivery_count=3,
            check=expect(["header"], {"durable": True, "priority": 9, "ttl": 60000,
                                      "first_acquirer": True, "delivery_count": 3}))
    message("header_priority_default_4", priority=4, check=expect(["header", "priority"], None))
    message("header_priority_0", priority=0, check=expect(["header", "priority"], 0))
    message("header_priority_255", priority=255)
    message("header_ttl_ms", ttl=1.5, check=expect(["header", "ttl"], 1500))
    message("header_first_acquirer_only", first_acquirer=True)
    message("header_delivery_count_only", delivery_count=7)
    message("header_max", ttl=(2**32 - 1) / 1000, delivery_count=2**32 - 1,
            check=expect(["header"], {"durable": None, "priority": None, "ttl": 2**32 - 1,
                                      "first_acquirer": None, "delivery_count": 2**32 - 1}))
    message("header_explicit_defaults", durable=False, priority=4, ttl=0, first_acquirer=False,
            delivery_count=0)

    # properties: message-id / correlation-id variants
    message("id_string", id="msg-1", check=expect(["properties", "message_id"], S("msg-1")))
    message("id_string_empty", id="", check=expect(["properties", "message_id"], S("")))
    message("id_ulong_0", id=0, check=expect(["properties", "message_id"], UL(0)))
    message("id_ulong_5", id=5, check=expect(["properties", "message_id"], UL(5)))
    message("id_ulong_256", id=256, check=expect(["properties", "message_id"], UL(256)))
    message("id_ulong_max", id=2**64 - 1, check=expect(["properties", "message_id"], UL(2**64 - 1)))
    message("id_uuid", id=FIXED_UUID, check=expect(["properties", "message_id"], UU(str(FIXED_UUID))))
    message("id_binary", id=b"\x01\x02\x03", check=expect(["properties", "message_id"], BIN(b"\x01\x02\x03")))
    message("correlation_id_string", correlation_id="corr-1")
    message("correlation_id_ulong", correlation_id=123456789)
    message("correlation_id_uuid", correlation_id=FIXED_UUID2)
    message("correlation_id_binary", correlation_id=b"\xca\xfe")
    message("user_id", user_id=b"guest", check=expect(["properties", "user_id"], b"guest".hex()))
    message("user_id_empty", user_id=b"", check=expect(["properties", "user_id"], ""))
    message("to_only", address="queue://orders")
    message("empty_strings", address="", subject="", reply_to="")
    message("times", creation_time=1700000000.5, expiry_time=1700003600.25,
            check=expect(["properties"], dict(
                message_id=None, user_id=None, to=None, subject=None, reply_to=None, correlation_id=None,
                content_type=None, content_encoding=None, absolute_expiry_time=1700003600250,
                creation_time=1700000000500, group_id=None, group_sequence=None, reply_to_group_id=None)))
    message("group_sequence_5", group_id="g", group_sequence=5)
    message("group_sequence_max", group_sequence=2**32 - 1)
    message("long_subject_300", subject="".join(chr(0x61 + i % 26) for i in range(300)))
    message("unicode_properties", address="\u00e9t\u00e9", subject="\u65e5\u672c\U0001F600",
            group_id="gr\u00fcppe")
    message("properties_all", id=FIXED_UUID, user_id=b"admin", address="amqp://host/queue",
            subject="subject-line", reply_to="amqp://host/replies", correlation_id="corr-42",
            content_type="application/json", content_encoding="gzip",
            expiry_time=1700003600, creation_time=1700000000, group_id="group-a", group_sequence=17,
            reply_to_group_id="group-b",
            check=expect(["properties"], dict(
                message_id=UU(str(FIXED_UUID)), user_id=b"admin".hex(), to="amqp://host/queue",
                subject="subject-line", reply_to="amqp://host/replies", correlation_id=S("corr-42"),
                content_type="application/json", content_encoding="gzip",
                absolute_expiry_time=1700003600000, creation_time=1700000000000, group_id="group-a",
                group_sequence=17, reply_to_group_id="group-b")))

    # application properties
    message("application_properties_various", properties={
        "str": "v", "long": 42, "int": int32(-7), "bool": True, "double": 3.25, "null": None,
        "ubyte": ubyte(200), "ushort": ushort(60000), "uint": uint(4000000000), "ulong": ulong(2**64 - 1),
        "byte": byte(-1), "short": short(-1000), "float": float32(0.5), "char": char("Z"),
        "timestamp": timestamp(1311704463521), "uuid": FIXED_UUID2, "binary": b"\x00\xff",
        "symbol": symbol("sym"), "empty": ""},
        check=ensure(lambda d: [p[0] for p in d["application_properties"]][:3] == ["str", "long", "int"],
                     "application properties keep insertion order"))
    message("application_properties_empty_map", properties={},
            check=expect(["application_properties"], []))

    # annotations
    message("message_annotations_symbol_keys", annotations={
        symbol("x-opt-jms-msg-type"): byte(5), symbol("x-opt-to-type"): "queue",
        symbol("x-opt-partition-key"): "p1"})
    message("message_annotations_ulong_keys", annotations={ulong(1): "one", ulong(2**64 - 1): 2,
                                                           symbol("x-mixed"): True})
    message("message_annotations_str_keys_become_symbols", annotations={"x-opt-str": "v"},
            check=expect(["message_annotations"], [[SYM("x-opt-str"), S("v")]]))
    message("message_annotations_empty_map", annotations={}, check=expect(["message_annotations"], []))
    message("delivery_annotations", instructions={symbol("x-opt-delivery"): 1, ulong(10): symbol("s")})

    # everything at once
    message("all_sections", durable=True, priority=7, ttl=30, first_acquirer=True, delivery_count=1,
            instructions={symbol("x-da"): "d"}, annotations={symbol("x-ma"): int32(1)},
            id=ulong(99), user_id=b"u", address="to", subject="subj", reply_to="rt", correlation_id=b"c",
            content_type="text/plain", content_encoding="utf-8", expiry_time=2000, creation_time=1000,
            group_id="gid", group_sequence=300, reply_to_group_id="rgid",
            properties={"k": "v", "n": 1}, body="the body")
    message("all_sections_data_body", durable=True, annotations={symbol("x-ma"): "m"},
            id="all-data", properties={"k": "v"}, body=b"payload", inferred=True)

    # benchmark-representative: 100-byte body + a few properties
    message("bench_100b", id="bench-0001", address="bench/queue", content_type="application/octet-stream",
            durable=True, properties={"seq": 1, "source": "bench"},
            body=bytes((i * 31 + 7) & 0xFF for i in range(100)), inferred=True)
    message("bench_100b_string_value", id=ulong(1), address="bench/queue", durable=True,
            properties={"seq": 1}, body="".join(chr(0x61 + (i % 26)) for i in range(100)))

    # Sections proton's Python Message API cannot produce (footer, multiple data/sequence sections):
    # assembled from proton's own Message.encode() output plus proton Data-encoded described sections.
    base = Message(body=b"abc", inferred=True, id="with-footer").encode()
    footer = section_bytes(0x78, MAP([SYM("x-opt-checksum"), UI(0xDEADBEEF)], [UL(5), S("five")]))
    composed_message("composed_footer", base + footer,
                     check=expect(["footer"], [[SYM("x-opt-checksum"), UI(0xDEADBEEF)], [UL(5), S("five")]]))
    base = Message(body=b"part1", inferred=True).encode()
    composed_message("composed_two_data_sections", base + section_bytes(0x75, BIN(b"part2")),
                     check=expect(["body"], {"data": [b"part1".hex(), b"part2".hex()]}))
    base = Message(body=[1], inferred=True).encode()
    composed_message("composed_two_sequence_sections", base + section_bytes(0x76, LIST(S("b"))),
                     check=expect(["body"], {"sequence": [[L(1)], [S("b")]]}))
    composed_message("composed_no_header_no_properties",
                     section_bytes(0x77, S("bare")),
                     check=ensure(lambda d: d["header"] is None and d["properties"] is None,
                                  "bare amqp-value has no header/properties"))


# ---------------------------------------------------------------------------
# independent structural scan (does not use proton): walks the raw bytes, checks that every
# size/count field is consistent, and collects the set of constructor codes used.
# ---------------------------------------------------------------------------

FIXED_WIDTH = {0x40: 0, 0x41: 0, 0x42: 0, 0x43: 0, 0x44: 0, 0x45: 0, 0x50: 1, 0x51: 1, 0x52: 1, 0x53: 1,
               0x54: 1, 0x55: 1, 0x56: 1, 0x60: 2, 0x61: 2, 0x70: 4, 0x71: 4, 0x72: 4, 0x73: 4, 0x74: 4,
               0x80: 8, 0x81: 8, 0x82: 8, 0x83: 8, 0x84: 8, 0x94: 16, 0x98: 16}
VARIABLE = {0xa0: 1, 0xa1: 1, 0xa3: 1, 0xb0: 4, 0xb1: 4, 0xb3: 4}
COMPOUND = {0xc0: 1, 0xc1: 1, 0xd0: 4, 0xd1: 4}
ARRAYS = {0xe0: 1, 0xf0: 4}


class Scan:
    def __init__(self, b):
        self.b = b
        self.codes = set()

    def uint(self, pos, width):
        assert pos + width <= len(self.b), "truncated"
        return int.from_bytes(self.b[pos:pos + width], "big"), pos + width

    def constructor(self, pos):
        """Return (format code, position after the constructor), skipping descriptors."""
        code = self.b[pos]
        pos += 1
        if code == 0x00:
            self.codes.add(0x00)
            pos = self.value(pos)  # descriptor
            return self.constructor(pos)  # the described value's own constructor (may be 0x00 again)
        self.codes.add(code)
        return code, pos

    def body(self, code, pos):
        if code in FIXED_WIDTH:
            return pos + FIXED_WIDTH[code]
        if code in VARIABLE:
            n, pos = self.uint(pos, VARIABLE[code])
            assert pos + n <= len(self.b)
            return pos + n
        if code in COMPOUND:
            w = COMPOUND[code]
            size, pos = self.uint(pos, w)
            end = pos + size
            count, pos = self.uint(pos, w)
            if code in (0xc1, 0xd1):
                assert count % 2 == 0
            for _ in range(count):
                pos = self.value(pos)
            assert pos == end, "compound size mismatch"
            return end
        if code in ARRAYS:
            w = ARRAYS[code]
            size, pos = self.uint(pos, w)
            end = pos + size
            count, pos = self.uint(pos, w)
            elem, pos = self.constructor(pos)
            for _ in range(count):
                pos = self.body(elem, pos)
            assert pos == end, "array size mismatch"
            return end
        raise AssertionError("unknown constructor 0x%02x" % code)

    def value(self, pos):
        code, pos = self.constructor(pos)
        return self.body(code, pos)


def scan_codes(b):
    sc = Scan(b)
    pos = 0
    while pos < len(b):
        pos = sc.value(pos)
    assert pos == len(b)
    return sc.codes


# ---------------------------------------------------------------------------
# notes: encoding choices observed in proton's output (each one asserted)
# ---------------------------------------------------------------------------

def enc_hex(t):
    return encode_typed(t).hex()


def msg_hex(**kw):
    return Message(**kw).encode().hex()


def gen_notes():
    notes = []

    def note(text, cond):
        assert cond, "observation no longer holds: " + text
        notes.append(text)

    note("Data.encode() uses the compact scalar forms: uint 0 -> 0x43 (uint0), 1..255 -> 0x52 smalluint, "
         ">=256 -> 0x70; ulong 0 -> 0x44, 1..255 -> 0x53 smallulong, else 0x80.",
         enc_hex(UI(0)) == "43" and enc_hex(UI(255)) == "52ff" and enc_hex(UI(256)) == "7000000100"
         and enc_hex(UL(0)) == "44" and enc_hex(UL(255)) == "53ff" and enc_hex(UL(256)) == "800000000000000100")
    note("int in -128..127 -> 0x54 smallint, else 0x71; long in -128..127 -> 0x55 smalllong, else 0x81.",
         enc_hex(I(-128)) == "5480" and enc_hex(I(128)) == "7100000080"
         and enc_hex(L(127)) == "557f" and enc_hex(L(-129)) == "81ffffffffffffff7f")
    note("booleans outside arrays use 0x41 (true) / 0x42 (false), never 0x56.",
         enc_hex(BOOL(True)) == "41" and enc_hex(BOOL(False)) == "42")
    note("binary/string/symbol use the 8-bit-length form (0xa0/0xa1/0xa3) when the byte length is <= 255 "
         "and the 32-bit form (0xb0/0xb1/0xb3) from 256 bytes; the threshold is on UTF-8 bytes, not chars.",
         enc_hex(S("x" * 255))[:4] == "a1ff" and enc_hex(S("x" * 256))[:10] == "b100000100"
         and enc_hex(S("\u00e9" * 128))[:10] == "b100000100" and enc_hex(BIN(b"\0" * 255))[:4] == "a0ff"
         and enc_hex(SYM("s" * 256))[:10] == "b300000100")
    note("empty list -> 0x45 (list0). Non-empty lists are ALWAYS list32 (0xd0), even when tiny; "
         "Data.encode() never emits list8 (0xc0).",
         enc_hex(LIST()) == "45" and enc_hex(LIST(I(1))) == "d000000006000000015401")
    note("maps are ALWAYS map32 (0xd1), including the empty map (d1 00000004 00000000); never map8 (0xc1).",
         enc_hex(MAP()) == "d10000000400000000" and enc_hex(MAP([S("a"), I(1)]))[:2] == "d1")
    note("arrays are ALWAYS array32 (0xf0), even empty (f0 00000005 00000000 <ctor>); never array8 (0xe0).",
         enc_hex(ARR("int", [])) == "f0000000050000000071")
    note("array elements use the full-width constructor for their type: int -> 0x71, uint -> 0x70 (not 0x52/0x43), "
         "ulong -> 0x80, long -> 0x81, symbol -> 0xb3 (sym32), string -> 0xb1, binary -> 0xb0, "
         "bool -> 0x56 with one byte per element, null -> 0x40 with zero-width elements.",
         enc_hex(ARR("int", [I(1)])) == "f0000000090000000171" + "00000001"
         and enc_hex(ARR("uint", [UI(0)])) == "f0000000090000000170" + "00000000"
         and enc_hex(ARR("ulong", [UL(0)])) == "f00000000d0000000180" + "0000000000000000"
         and enc_hex(ARR("symbol", [SYM("a")])) == "f00000000a00000001b30000000161"
         and enc_hex(ARR("bool", [BOOL(True), BOOL(False)])) == "f000000007000000025601" + "00"
         and enc_hex(ARR("null", [N(), N()])) == "f0000000050000000240")
    note("inside an array of lists/maps/arrays every element is written in the 32-bit compound form without "
         "its constructor; an empty list element is 00000004 00000000 (list0 cannot be used inside an array). "
         "Scalars inside those element lists are compact again (e.g. smallint 0x54).",
         enc_hex(ARR("list", [LIST(I(1)), LIST()])) ==
         "f0000000170000000" "2d0" "00000006" "00000001" "5401" "00000004" "00000000")
    note("described arrays put the descriptor after the count: f0 <size> <count> 00 <descriptor> <element ctor> ...",
         enc_hex(ARR("int", [I(1)], descriptor=UL(1))) == "f00000000c00000001005301" "71" "00000001")
    note("descriptors are ordinary values, so ulong descriptors use 0x53 smallulong (00 53 70) or 0x44 for 0, "
         "and symbol descriptors use sym8/sym32.",
         enc_hex(DESC(UL(0x70), N())) == "00537040" and enc_hex(DESC(UL(0), N())) == "004440"
         and enc_hex(DESC(SYM("a"), N())) == "00a3016140")
    note("float/double/decimal/uuid/char/timestamp are fixed width (0x72, 0x82, 0x74, 0x84, 0x94, 0x98, 0x73, 0x83); "
         "NaN/-0.0/inf/subnormal bit patterns are passed through unchanged (quiet NaN payloads preserved for double).",
         enc_hex(D("7ff8000000000001")) == "827ff8000000000001" and enc_hex(F("80000000")) == "7280000000")
    note("Message.encode() ALWAYS writes a header section and a properties section, even when every field is "
         "default: an empty Message() is 00 53 70 45 00 53 73 45 (both as list0).",
         msg_hex() == "0053704500537345")
    note("Message.encode() writes header/properties with list8 (0xc0) when they fit (list32 0xd0 otherwise, "
         "e.g. a 300-byte subject), omits trailing null fields, and writes interior absent fields as 0x40.",
         msg_hex(durable=True) == "005370c002014100537345"
         and msg_hex(subject="s" * 300)[14:16] == "d0"
         and msg_hex(group_sequence=5) == "00537045005373c00e0c40404040404040404040405205")
    note("Message.encode() treats some 'zero' values as unset and does not write them: priority 4 (default), "
         "ttl 0, delivery_count 0, durable/first_acquirer false, creation/expiry time 0, group_sequence 0. "
         "priority 0 IS written (0x50 00). An empty string/binary field (to, subject, user_id, id) IS written.",
         msg_hex(priority=4, ttl=0, delivery_count=0, durable=False, first_acquirer=False,
                 creation_time=0, expiry_time=0, group_sequence=0) == "0053704500537345"
         and msg_hex(priority=0) == "005370c0040240500000537345"
         and msg_hex(user_id=b"") == "00537045005373c0040240a000")
    note("Message.encode() header/properties use compact scalars: priority ubyte 0x50, ttl/delivery_count/"
         "group_sequence as smalluint 0x52 when <= 255 else uint 0x70, message-id ulong 0 as 0x44 and small "
         "ulongs as 0x53, content-type/encoding as sym8, times as 0x83 timestamps in milliseconds "
         "(the Python API takes seconds and multiplies by 1000).",
         msg_hex(delivery_count=7) == "005370c0070540404040520700537345"
         and msg_hex(id=0) == "00537045005373c0020144" and msg_hex(id=5) == "00537045005373c003015305"
         and msg_hex(ttl=1.5) == "005370c00803404070000005dc00537345")
    note("Message.encode() annotations/application-properties/body are encoded with Data.encode(), so they "
         "get map32/list32 (never map8/list8). Body: str/dict/int/etc. -> amqp-value (0x77); with "
         "inferred=True bytes -> one data section (0x75) and list -> one amqp-sequence section (0x76); "
         "body=None -> no body section at all. Python int -> long, float -> double.",
         msg_hex(body=b"x", inferred=True) == "0053704500537345005375a00178"
         and msg_hex(body=[], inferred=True) == "005370450053734500537645")
    note("An empty annotations/application-properties dict is still written as a section with an empty "
         "map32 (d1 00000004 00000000).",
         msg_hex(properties={}) == "0053704500537345005374d10000000400000000")
    section_prefixes = set()
    for v in VECTORS:
        if v["kind"] == "message":
            for _code, _val, raw in split_sections(bytes.fromhex(v["hex"])):
                section_prefixes.add(raw[:2].hex())
    note("Sections always use ulong descriptors encoded as smallulong (00 53 7x), never symbolic descriptors.",
         section_prefixes == {"0053"})

    codes = {"value": set(), "message": set()}
    for v in VECTORS:
        codes[v["kind"]] |= scan_codes(bytes.fromhex(v["hex"]))
    fmt = lambda cs: " ".join("%02x" % c for c in sorted(cs))
    note("Constructor codes appearing in the value vectors (independent byte-level scan, not proton): %s. "
         "Never produced by Data.encode(): c0 (list8), c1 (map8), e0 (array8), 0x56 outside arrays. "
         "So list8/map8/array8 decoding is only exercised by message header/properties (list8) here."
         % fmt(codes["value"]),
         not codes["value"] & {0xc0, 0xc1, 0xe0})
    note("Constructor codes appearing in the message vectors: %s (c0 only for header/properties lists; "
         "no c1/e0)." % fmt(codes["message"]),
         not codes["message"] & {0xc1, 0xe0})
    note("The Python Message API cannot express a footer, multiple data/sequence sections, or a message without "
         "header+properties; the 'message_composed_*' vectors append proton Data-encoded sections (00 53 78 ..., "
         "00 53 75 ...) to proton Message output (or use a lone Data-encoded amqp-value) and are verified to be "
         "accepted by proton's Message.decode().", True)
    note("Every value vector was checked: decode(hex) consumes all bytes, the decoded tree equals the input spec, "
         "and re-encoding the decoded tree reproduces the same bytes. Message vectors: proton's Message.decode() "
         "restores the same fields and re-encodes to identical bytes.", True)
    return notes


# ---------------------------------------------------------------------------

def render(doc):
    lines = ["{"]
    lines.append(' "generator": %s,' % json.dumps(doc["generator"]))
    lines.append(' "proton_version": %s,' % json.dumps(doc["proton_version"]))
    lines.append(' "notes": [')
    lines.append(",\n".join("  " + json.dumps(n, ensure_ascii=False) for n in doc["notes"]))
    lines.append(" ],")
    lines.append(' "vectors": [')
    lines.append(",\n".join("  " + json.dumps(v, ensure_ascii=False) for v in doc["vectors"]))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv):
    gen_values()
    gen_messages()
    notes = gen_notes()
    doc = {"generator": "python-qpid-proton " + PROTON_VERSION, "proton_version": PROTON_VERSION,
           "notes": notes, "vectors": VECTORS}
    text = render(doc)
    assert json.loads(text) == json.loads(json.dumps(doc))
    nval = sum(1 for v in VECTORS if v["kind"] == "value")
    nmsg = sum(1 for v in VECTORS if v["kind"] == "message")
    if "--stdout" in argv:
        sys.stdout.write(text)
    elif "--check" in argv:
        with open(OUT_PATH, encoding="utf-8") as f:
            if f.read() != text:
                sys.stderr.write("vectors.json is stale; rerun gen_vectors.py\n")
                return 1
        sys.stderr.write("vectors.json up to date (%d value, %d message vectors)\n" % (nval, nmsg))
    else:
        with open(OUT_PATH, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        sys.stderr.write("wrote %s: %d value vectors, %d message vectors\n" % (OUT_PATH, nval, nmsg))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
