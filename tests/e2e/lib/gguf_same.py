#!/usr/bin/env python3
"""Two GGUF files hold the same tensors (names, shapes, types, data bytes) and metadata.

  python3 gguf_same.py A.gguf B.gguf        exit 1 with the first difference

A small independent GGUF parser (no validation beyond what the comparison needs): tests feed it
files our writer and llama.cpp's wrote."""
import struct, sys
def parse(path):
    b = open(path, 'rb').read()
    o = 4 + 4
    nt, nkv = struct.unpack_from('<QQ', b, o); o += 16
    sizes = {0:1,1:1,2:2,3:2,4:4,5:4,6:4,7:1,10:8,11:8,12:8}
    def rs(o):
        n = struct.unpack_from('<Q', b, o)[0]; return b[o+8:o+8+n].decode(), o + 8 + n
    def rv(t, o):
        if t == 8: return rs(o)
        if t == 9:
            et, n = struct.unpack_from('<IQ', b, o); o += 12; vals = []
            for _ in range(n):
                v, o = rv(et, o); vals.append(v)
            return vals, o
        fmt = {0:'<B',1:'<b',2:'<H',3:'<h',4:'<I',5:'<i',6:'<f',7:'<B',10:'<Q',11:'<q',12:'<d'}[t]
        return struct.unpack_from(fmt, b, o)[0], o + sizes[t]
    kv = {}
    for _ in range(nkv):
        k, o = rs(o); t = struct.unpack_from('<I', b, o)[0]; o += 4
        v, o = rv(t, o); kv[k] = v
    align = kv.get('general.alignment', 32)
    infos = []
    for _ in range(nt):
        name, o = rs(o); nd = struct.unpack_from('<I', b, o)[0]; o += 4
        ne = struct.unpack_from('<%dQ' % nd, b, o); o += 8 * nd
        t, off = struct.unpack_from('<IQ', b, o); o += 12
        infos.append((name, ne, t, off))
    data = o + (-o) % align
    ends = sorted(off for _, _, _, off in infos) + [len(b) - data]
    out = {}
    for name, ne, t, off in infos:
        nxt = min(e for e in ends if e > off)
        out[name] = (ne, t, b[data + off:data + nxt])
    return kv, out
ka, ta = parse(sys.argv[1]); kb, tb = parse(sys.argv[2])
assert ta.keys() == tb.keys(), set(ta) ^ set(tb)
for n in sorted(ta):
    (nea, typa, da), (neb, typb, db) = ta[n], tb[n]
    assert nea == neb and typa == typb, f"{n}: shape {nea} type {typa} vs shape {neb} type {typb}"
    L = min(len(da), len(db))
    assert len(da) - len(db) in range(-31, 32) and da[:L] == db[:L], f"{n}: data differs"  # up to padding
diff = [k for k in sorted(set(ka) | set(kb)) if ka.get(k) != kb.get(k)]
assert not diff, "metadata differs: " + ", ".join(diff)
print(len(ta), "tensors with the same types, shapes and bytes; %d metadata keys alike" % len(ka))
