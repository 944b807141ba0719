"""Mark one version requirement (e.g. GLIBCXX_3.4.32) of an ELF64 shared library weak.

A weak version need (VER_FLG_WEAK) lets the dynamic loader accept a libstdc++ that lacks it;
the symbols it named are then found unversioned (here, in our shim)."""
import struct, sys

SHT_GNU_VERNEED, VER_FLG_WEAK = 0x6FFFFFFE, 0x2
path, wanted = sys.argv[1], sys.argv[2].encode()
data = bytearray(open(path, "rb").read())
assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "64-bit little-endian ELF only"
shoff, = struct.unpack_from("<Q", data, 0x28)
shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
found = False
for _, sh_type, _, _, offset, _, link, info, _, _ in sections:
    if sh_type != SHT_GNU_VERNEED:
        continue
    strtab_offset = sections[link][4]
    need = offset
    for _ in range(info):
        _, count, _, aux, next_need = struct.unpack_from("<HHIII", data, need)
        entry = need + aux
        for _ in range(count):
            _, flags, _, name, next_aux = struct.unpack_from("<IHHII", data, entry)
            end = data.index(b"\0", strtab_offset + name)
            if data[strtab_offset + name:end] == wanted:
                struct.pack_into("<H", data, entry + 4, flags | VER_FLG_WEAK)
                found = True
            entry += next_aux
        need += next_need
if not found:
    sys.exit(f"{path}: no version need named {wanted.decode()}")
open(path, "wb").write(data)
