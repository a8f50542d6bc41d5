#!/usr/bin/env python3
"""Where the page's Wasm goes: code size per function, grouped by crate or module path.

Reads a Wasm binary that still has its `name` section (the one cargo writes, before wasm-bindgen
and wasm-opt; wasm-ld writes the names already demangled) and prints the largest groups and
functions. Raw code bytes rank what to look at; the gzip column (each group's bodies compressed
together) is closer to what the page-weight figure counts, since repeated code compresses well.

    cargo build -p frontend --target wasm32-unknown-unknown --profile wasm-release
    python3 frontend/tools/wasm_profile.py target/wasm32-unknown-unknown/wasm-release/frontend.wasm
    python3 frontend/tools/wasm_profile.py FILE --depth 3 --grep chrono   # finer groups, one crate
"""

import argparse
import collections
import re
import sys
import zlib


def leb(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def sections(data):
    if data[:4] != b"\0asm":
        sys.exit("not a Wasm binary")
    pos = 8
    while pos < len(data):
        kind = data[pos]
        size, pos = leb(data, pos + 1)
        yield kind, data[pos : pos + size]
        pos += size


def read_name(data, pos):
    size, pos = leb(data, pos)
    return data[pos : pos + size].decode("utf-8", "replace"), pos + size


def parse(data):
    imported = 0
    bodies = []
    names = {}
    data_bytes = 0
    for kind, body in sections(data):
        if kind == 2:  # imports: functions among them take the first indices
            count, pos = leb(body, 0)
            for _ in range(count):
                _, pos = read_name(body, pos)
                _, pos = read_name(body, pos)
                desc = body[pos]
                pos += 1
                if desc == 0:
                    imported += 1
                    _, pos = leb(body, pos)
                elif desc == 1:
                    pos += 1
                    flags, pos = leb(body, pos)
                    _, pos = leb(body, pos)
                    if flags & 1:
                        _, pos = leb(body, pos)
                elif desc == 2:
                    flags, pos = leb(body, pos)
                    _, pos = leb(body, pos)
                    if flags & 1:
                        _, pos = leb(body, pos)
                else:
                    pos += 2
        elif kind == 10:
            count, pos = leb(body, 0)
            for _ in range(count):
                size, pos = leb(body, pos)
                bodies.append(body[pos : pos + size])
                pos += size
        elif kind == 11:
            data_bytes += len(body)
        elif kind == 0:
            name, pos = read_name(body, 0)
            if name != "name":
                continue
            while pos < len(body):
                sub = body[pos]
                size, pos = leb(body, pos + 1)
                end = pos + size
                if sub == 1:
                    count, p = leb(body, pos)
                    for _ in range(count):
                        index, p = leb(body, p)
                        names[index], p = read_name(body, p)
                pos = end
    return imported, bodies, names, data_bytes


HASH = re.compile(r"::h[0-9a-f]{16}$")
ESCAPES = {"$LT$": "<", "$GT$": ">", "$RF$": "&", "$BP$": "*", "$C$": ",", "$SP$": "@", "$u20$": " ",
           "$u27$": "'", "$u5b$": "[", "$u5d$": "]", "$u7b$": "{", "$u7d$": "}", "$u7e$": "~", "$u3b$": ";",
           "$u2b$": "+", "$u22$": '"'}


def demangle(name):
    """Rust's legacy mangling (`_ZN...E`) read back; v0 names (`_R...`) reduced to their identifiers."""
    if name.startswith("_ZN") and name.endswith("E"):
        pos, parts = 3, []
        while pos < len(name) - 1 and name[pos].isdigit():
            digits = re.match(r"\d+", name[pos:]).group()
            pos += len(digits)
            parts.append(name[pos : pos + int(digits)])
            pos += int(digits)
        text = "::".join(p[1:] if p.startswith("_$") else p for p in parts)
        for code, char in ESCAPES.items():
            text = text.replace(code, char)
        return text.replace("..", "::")
    if name.startswith("_R"):
        idents, pos = [], 2
        for match in re.finditer(r"(\d+)_?", name):
            if match.start() < pos:
                continue
            length = int(match.group(1))
            ident = name[match.end() : match.end() + length]
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident) and not ident.startswith("Cs"):
                idents.append(ident)
                pos = match.end() + length
        return "::".join(idents)
    return name


def path_of(name):
    """The module path of a demangled name, generics and impl brackets stripped."""
    name = HASH.sub("", name)
    # `<T as Trait>::method` and `<Type>::method`: group by the implementing type's path.
    if name.startswith("<"):
        depth = 0
        for i, c in enumerate(name):
            depth += c == "<"
            depth -= c == ">"
            if depth == 0:
                inner = name[1:i]
                inner = inner.split(" as ")[0]
                name = inner + name[i + 1 :]
                break
    flat = []
    depth = 0
    for c in name:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0:
            flat.append(c)
    text = "".join(flat)
    for prefix in ("&", "*mut ", "*const ", "mut ", "dyn "):
        text = text.removeprefix(prefix)
    return [part for part in text.split("::") if part]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("wasm")
    parser.add_argument("--depth", type=int, default=2, help="path segments per group")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--grep", help="only functions whose name contains this")
    args = parser.parse_args()

    data = open(args.wasm, "rb").read()
    imported, bodies, names, data_bytes = parse(data)
    # The two sections that ship, compressed as a whole: a quick before/after figure.
    shipped = {kind: body for kind, body in sections(data) if kind in (10, 11)}
    code_gz, data_gz = (len(zlib.compress(shipped.get(kind, b""), 9)) for kind in (10, 11))
    groups = collections.defaultdict(list)
    functions = []
    for i, body in enumerate(bodies):
        name = demangle(names.get(imported + i, f"func[{imported + i}]"))
        if args.grep and args.grep not in name:
            continue
        key = "::".join(path_of(name)[: args.depth]) or name
        groups[key].append(body)
        functions.append((len(body), name))

    total = sum(len(b) for bs in groups.values() for b in bs)
    print(f"{len(functions)} functions, {total} code bytes; data segments {data_bytes} bytes")
    print(f"compressed: code section {code_gz}, data section {data_gz}, both {code_gz + data_gz}\n")
    print(f"{'code':>8} {'gzip':>7} {'fns':>5}  group")
    ranked = sorted(groups.items(), key=lambda kv: -sum(map(len, kv[1])))
    for key, bs in ranked[: args.top]:
        raw = sum(map(len, bs))
        packed = len(zlib.compress(b"".join(bs), 9))
        print(f"{raw:>8} {packed:>7} {len(bs):>5}  {key}")
    print(f"\n{'code':>8}  largest functions")
    for size, name in sorted(functions, reverse=True)[: args.top]:
        print(f"{size:>8}  {HASH.sub('', name)[:150]}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # piped into `head`
        pass
