"""Generate EXI grammar tables for ISO 15118-20 from the XSDs.

    python tools/gen_exi.py --xsd-dir DIR [--out controller/iso15118] [--check]

Reads the schemas with xml.etree (CPython only), builds the schema-informed
element/type grammars of EXI 1.0 (W3C, Second Edition, section 8.5) the way
EXIficient builds them with default options and strict=false, and writes one
data-only module per namespace (`grammar_app.py`, `grammar_cm.py`,
`grammar_dc.py`, `grammar_ac.py`) that controller/iso15118/exi.py interprets.
See docs/exi.md for the construction.

`--check` regenerates in memory and exits 1 when the files on disk differ.
"""
import argparse
import os
import sys
import xml.etree.ElementTree as ET

XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
UNBOUNDED = -1
COUNTED_MIN = 33  # finite maxOccurs above this on an element particle -> counted state

# (module, root schema file, namespace)
TARGETS = (
    ("grammar_app", "V2G_CI_AppProtocol.xsd", "urn:iso:15118:2:2010:AppProtocol"),
    ("grammar_cm", "V2G_CI_CommonMessages.xsd", "urn:iso:std:iso:15118:-20:CommonMessages"),
    ("grammar_dc", "V2G_CI_DC.xsd", "urn:iso:std:iso:15118:-20:DC"),
    ("grammar_ac", "V2G_CI_AC.xsd", "urn:iso:std:iso:15118:-20:AC"),
)

# simple type kinds (shared with exi.py)
ST_STRING, ST_HEX, ST_B64, ST_BOOL, ST_UINT, ST_INT, ST_NBIT, ST_ENUM = 0, 1, 2, 3, 4, 5, 6, 7
# production kinds (shared with exi.py)
P_SE, P_EE, P_AT, P_CH, P_SEANY, P_CHMIXED = 0, 1, 2, 3, 4, 5

STRINGS = ("string", "normalizedString", "token", "anyURI", "ID", "IDREF", "NCName",
           "Name", "language", "NMTOKEN", "QName")
INT_BOUNDS = {
    "integer": (None, None), "long": (-(1 << 63), (1 << 63) - 1), "int": (-(1 << 31), (1 << 31) - 1),
    "short": (-32768, 32767), "byte": (-128, 127), "nonNegativeInteger": (0, None),
    "positiveInteger": (1, None), "nonPositiveInteger": (None, 0), "negativeInteger": (None, -1),
    "unsignedLong": (0, (1 << 64) - 1), "unsignedInt": (0, (1 << 32) - 1),
    "unsignedShort": (0, 65535), "unsignedByte": (0, 255),
}


def nbits(n):
    """Bits for n distinct values (EXI n-bit unsigned integer width)."""
    b = 0
    while (1 << b) < n:
        b += 1
    return b


class Schema:
    """All declarations of one schema set (a root file and its imports)."""

    def __init__(self, xsd_dir, root_file):
        self.dir = xsd_dir
        self.types = {}      # (ns, name) -> (node, schema_ns, prefixes, efd)
        self.elements = {}   # (ns, name) -> (node, schema_ns, prefixes, efd)
        self.loaded = set()
        self.load(root_file)

    def load(self, fname):
        if fname in self.loaded:
            return
        self.loaded.add(fname)
        path = os.path.join(self.dir, fname)
        prefixes = {}
        for ev, item in ET.iterparse(path, events=("start-ns",)):
            prefixes.setdefault(item[0], item[1])
        root = ET.parse(path).getroot()
        tns = root.get("targetNamespace", "")
        efd = root.get("elementFormDefault", "unqualified") == "qualified"
        for child in root:
            tag = child.tag.split("}")[1]
            if tag in ("import", "include"):
                loc = child.get("schemaLocation")
                if loc:
                    self.load(loc)
            elif tag in ("complexType", "simpleType"):
                self.types[(tns, child.get("name"))] = (child, tns, prefixes, efd)
            elif tag == "element":
                self.elements[(tns, child.get("name"))] = (child, tns, prefixes, efd)

    @staticmethod
    def qname(value, prefixes):
        if ":" in value:
            p, local = value.split(":", 1)
        else:
            p, local = "", value
        return (prefixes.get(p, ""), local)


def children(node, *tags):
    return [c for c in node if c.tag in tuple("{%s}%s" % (XS, t) for t in tags)]


def occurs(node):
    mn = int(node.get("minOccurs", "1"))
    mx = node.get("maxOccurs", "1")
    mx = UNBOUNDED if mx == "unbounded" else int(mx)
    return mn, mx


class Builder:
    def __init__(self, schema):
        self.s = schema
        self.simple = []        # simple type descriptors (tuples)
        self.simple_idx = {}
        self.grammars = []      # list of states lists
        self.type_gram = {}     # type key -> grammar index
        self.qnames = []        # (uri, local)
        self.qname_idx = {}
        self.subst = {}         # head qname -> [member qnames]
        for key, (node, tns, pfx, efd) in sorted(schema.elements.items()):
            sg = node.get("substitutionGroup")
            if sg:
                self.subst.setdefault(Schema.qname(sg, pfx), []).append(key)

    def qn(self, key):
        if key not in self.qname_idx:
            self.qname_idx[key] = len(self.qnames)
            self.qnames.append(key)
        return self.qname_idx[key]

    # ---------- simple types ----------
    def simple_type(self, key):
        """key: (ns, name) of a named type or ('#anon', node)."""
        desc = self.simple_desc(key)
        if desc not in self.simple_idx:
            self.simple_idx[desc] = len(self.simple)
            self.simple.append(desc)
        return self.simple_idx[desc]

    def simple_desc(self, key, facets=None):
        facets = dict(facets or {})
        if key[0] == XS:
            name = key[1]
            if "enum" in facets:
                return (ST_ENUM, tuple(facets["enum"]))
            if name in STRINGS:
                return (ST_STRING,)
            if name == "boolean":
                return (ST_BOOL,)
            if name == "hexBinary":
                return (ST_HEX,)
            if name == "base64Binary":
                return (ST_B64,)
            if name in INT_BOUNDS:
                lo, hi = INT_BOUNDS[name]
                if "min" in facets:
                    lo = facets["min"] if lo is None else max(lo, facets["min"])
                if "max" in facets:
                    hi = facets["max"] if hi is None else min(hi, facets["max"])
                if lo is not None and hi is not None and hi - lo < 4096:
                    return (ST_NBIT, lo, nbits(hi - lo + 1), hi)
                if lo is not None and lo >= 0:
                    return (ST_UINT,)
                return (ST_INT,)
            raise ValueError("unsupported built-in type xs:%s" % name)
        if key[0] == "#anon":
            node, pfx = key[1], key[2]
        else:
            node, tns, pfx, efd = self.s.types[key]
        restr = children(node, "restriction")
        if not restr:
            if children(node, "list") or children(node, "union"):
                return (ST_STRING,)
            raise ValueError("unsupported simple type %r" % (key,))
        r = restr[0]
        enum = []
        for f in r:
            t = f.tag.split("}")[1]
            v = f.get("value")
            if t == "enumeration":
                enum.append(v)
            elif t == "minInclusive" and "min" not in facets:
                facets["min"] = int(v)
            elif t == "minExclusive" and "min" not in facets:
                facets["min"] = int(v) + 1
            elif t == "maxInclusive" and "max" not in facets:
                facets["max"] = int(v)
            elif t == "maxExclusive" and "max" not in facets:
                facets["max"] = int(v) - 1
        if enum and "enum" not in facets:
            facets["enum"] = enum
        base = r.get("base")
        if base:
            return self.simple_desc(Schema.qname(base, pfx), facets)
        inner = children(r, "simpleType")
        return self.simple_desc(("#anon", inner[0], pfx), facets)

    def is_simple(self, key):
        if key[0] == XS:
            return key[1] != "anyType"
        return self.s.types[key][0].tag == "{%s}simpleType" % XS

    # ---------- complex types -> content model ----------
    def type_grammar(self, tkey, anon=None):
        """Grammar index for a type (named key) or anonymous node (anon=(node, tns, pfx, efd))."""
        if anon is None:
            ck = tkey
        elif anon[0].get("{%s}anyType" % XS) == "1":
            ck = ("#anyType",)
        else:
            ck = ("#anon", id(anon[0]))  # schema nodes live as long as the builder
        if ck in self.type_gram:
            return self.type_gram[ck]
        gi = len(self.grammars)
        self.type_gram[ck] = gi
        self.grammars.append(None)
        self.grammars[gi] = self.build_type(tkey, anon)
        return gi

    def build_type(self, tkey, anon):
        self.pos = []  # position -> terminal tuple
        self.counted = {}  # position -> (min, max) of a counted element particle
        if anon is None and self.is_simple(tkey):
            st = self.simple_type(tkey)
            tree = ("leaf", self.newpos(("CH", st)))
            return self.automaton(tree, False, None)
        if anon is not None and anon[0].tag == "{%s}simpleType" % XS:
            node, tns, pfx, efd = anon
            st = self.simple_type(("#anon", node, pfx))
            return self.automaton(("leaf", self.newpos(("CH", st))), False, None)
        if anon is None:
            node, tns, pfx, efd = self.s.types[tkey]
        else:
            node, tns, pfx, efd = anon
        attrs, content, mixed = self.complex_parts(node, tns, pfx, efd)
        attrs.sort(key=lambda a: (a[0][1], a[0][0]))
        seq = []
        for qkey, st, req in attrs:
            leaf = ("leaf", self.newpos(("AT", self.qn(qkey), st)))
            seq.append(leaf if req else ("opt", leaf))
        nattr = len(self.pos)
        seq.append(content)
        return self.automaton(("seq", seq), mixed, nattr)

    def complex_parts(self, node, tns, pfx, efd):
        """(attributes, content tree, mixed) of a complexType node, following derivation."""
        mixed = node.get("mixed") == "true"
        attrs = []
        for cc in children(node, "complexContent", "simpleContent"):
            is_simple = cc.tag.endswith("simpleContent")
            mixed = mixed or cc.get("mixed") == "true"
            for der in children(cc, "extension", "restriction"):
                base = Schema.qname(der.get("base"), pfx)
                if is_simple:
                    if self.is_simple(base):
                        st = self.simple_type(base)
                        content = ("leaf", self.newpos(("CH", st)))
                        battrs = []
                    else:
                        bnode, btns, bpfx, befd = self.s.types[base]
                        battrs, content, _ = self.complex_parts(bnode, btns, bpfx, befd)
                    return battrs + self.attributes(der, tns, pfx), content, mixed
                if der.tag.endswith("extension"):
                    if base == (XS, "anyType"):
                        battrs, bcontent = [], ("seq", [])
                    else:
                        bnode, btns, bpfx, befd = self.s.types[base]
                        battrs, bcontent, _ = self.complex_parts(bnode, btns, bpfx, befd)
                    own = self.particle_of(der, tns, pfx, efd)
                    return battrs + self.attributes(der, tns, pfx), ("seq", [bcontent, own]), mixed
                # restriction: the restriction's own particle and attributes
                return self.attributes(der, tns, pfx), self.particle_of(der, tns, pfx, efd), mixed
        return self.attributes(node, tns, pfx), self.particle_of(node, tns, pfx, efd), mixed

    def attributes(self, node, tns, pfx):
        out = []
        for a in children(node, "attribute"):
            name = a.get("name")
            # attributeFormDefault is unqualified in xmldsig; -20 locals are unqualified too
            qkey = ("", name)
            t = a.get("type")
            st = self.simple_type(Schema.qname(t, pfx)) if t else self.simple_type((XS, "string"))
            out.append((qkey, st, a.get("use") == "required"))
        if children(node, "anyAttribute"):
            raise ValueError("anyAttribute not supported")
        return out

    def particle_of(self, node, tns, pfx, efd):
        parts = children(node, "sequence", "choice", "all", "group")
        if not parts:
            return ("seq", [])
        return self.particle(parts[0], tns, pfx, efd)

    def newpos(self, term):
        self.pos.append(term)
        return len(self.pos) - 1

    def particle(self, node, tns, pfx, efd):
        """Expand a particle into a regular-expression tree with fresh positions."""
        tag = node.tag.split("}")[1]
        mn, mx = occurs(node)
        if tag == "element" and mx > COUNTED_MIN:
            t = self.element_term(node, tns, pfx, efd)
            assert t[0] == "leaf", "counted particle with substitution group"
            self.counted[t[1]] = (mn, mx)
            return ("counted", t[1], mn, mx)

        def one():
            if tag == "element":
                return self.element_term(node, tns, pfx, efd)
            if tag == "any":
                return ("leaf", self.newpos(("ANY",)))
            if tag in ("sequence", "all"):
                return ("seq", [self.particle(c, tns, pfx, efd) for c in node
                                if c.tag.split("}")[1] in ("element", "sequence", "choice", "any", "group")])
            if tag == "choice":
                return ("choice", [self.particle(c, tns, pfx, efd) for c in node
                                   if c.tag.split("}")[1] in ("element", "sequence", "choice", "any", "group")])
            raise ValueError("unsupported particle %s" % tag)

        items = [one() for _ in range(mn)]
        if mx == UNBOUNDED:
            if items:
                items[-1] = ("plus", items[-1])
            else:
                items.append(("opt", ("plus", one())))
        else:
            tail = None
            opts = [one() for _ in range(mx - mn)]
            for t in reversed(opts):
                tail = ("opt", t if tail is None else ("seq", [t, tail]))
            if tail is not None:
                items.append(tail)
        if len(items) == 1:
            return items[0]
        return ("seq", items)

    def element_term(self, node, tns, pfx, efd):
        ref = node.get("ref")
        if ref:
            key = Schema.qname(ref, pfx)
            members = self.members(key)
            leaves = [("leaf", self.newpos(("SE", m))) for m in members]
            return leaves[0] if len(leaves) == 1 else ("choice", leaves)
        name = node.get("name")
        form = node.get("form")
        qualified = efd if form is None else form == "qualified"
        key = (tns if qualified else "", name)
        return ("leaf", self.newpos(("SEL", key, node, tns, pfx, efd)))

    def members(self, head):
        """Non-abstract elements of head's substitution group (transitive), sorted by (local, uri)."""
        out, todo = [], [head]
        while todo:
            k = todo.pop()
            if k not in out:
                out.append(k)
                todo.extend(self.subst.get(k, []))
        out = [k for k in out if self.s.elements[k][0].get("abstract") != "true"]
        return sorted(out, key=lambda k: (k[1], k[0]))

    def decl_grammar(self, term):
        """Grammar index of the element declaration behind an SE position."""
        if term[0] == "SE":
            node, tns, pfx, efd = self.s.elements[term[1]]
        else:
            node, tns, pfx, efd = term[2], term[3], term[4], term[5]
        t = node.get("type")
        if t:
            return self.type_grammar(Schema.qname(t, pfx))
        inner = children(node, "complexType", "simpleType")
        if not inner:
            # no type: xs:anyType (only its element grammar frame; content unsupported)
            return self.type_grammar((XS, "anyType"), (ET.Element("{%s}complexType" % XS, {"{%s}anyType" % XS: "1"}), tns, pfx, efd))
        return self.type_grammar(None, (inner[0], tns, pfx, efd))

    # ---------- Glushkov automaton + subset construction ----------
    def automaton(self, tree, mixed, nattr):
        follow = {}

        def walk(t):
            k = t[0]
            if k in ("leaf", "counted"):
                p = t[1]
                follow.setdefault(p, set())
                if k == "counted":
                    follow[p].add(p)
                    return {p}, {p}, t[2] == 0
                return {p}, {p}, False
            if k == "seq":
                first, last, nul = set(), set(), True
                for c in t[1]:
                    f, l, n = walk(c)
                    for x in last:
                        follow[x] |= f
                    if nul:
                        first |= f
                    last = l | (last if n else set())
                    nul = nul and n
                return first, last, nul
            if k == "choice":
                first, last, nul = set(), set(), False
                for c in t[1]:
                    f, l, n = walk(c)
                    first |= f
                    last |= l
                    nul = nul or n
                return first, last, nul or not t[1]
            if k == "opt":
                f, l, n = walk(t[1])
                return f, l, True
            if k == "plus":
                f, l, n = walk(t[1])
                for x in l:
                    follow[x] |= f
                return f, l, n
            raise ValueError(k)

        first, last, nullable = walk(tree)
        pos = self.pos
        # terminals resolved before recursing (recursion resets self.pos)
        terms = []
        for p in pos:
            terms.append(p)
        states = []
        index = {}
        START = frozenset(["start"])
        todo = [START]
        index[START] = 0
        states.append(None)
        while todo:
            S = todo.pop(0)
            if S is START:
                cand = set(first)
                final = nullable
            else:
                cand = set()
                for p in S:
                    cand |= follow[p]
                final = any(p in last for p in S)
            groups = {}
            for p in sorted(cand):
                t = terms[p]
                if t[0] in ("SE", "SEL"):
                    key = ("SE", t[1])
                elif t[0] == "AT":
                    key = ("AT", t[1])
                elif t[0] == "CH":
                    key = ("CH",)
                else:
                    key = ("ANY",)
                groups.setdefault(key, []).append(p)
            prods = []
            order = sorted(groups.items(), key=lambda kv: (
                {"AT": 0, "SE": 1, "ANY": 2, "CH": 4}[kv[0][0]],
                (self.qnames[kv[0][1]][1], self.qnames[kv[0][1]][0]) if kv[0][0] == "AT" else min(kv[1])))
            counted = None
            if S is not START and len(S) == 1:
                p = next(iter(S))
                counted = self.counted.get(p)
            for key, ps in order:
                T = frozenset(ps)
                if T not in index:
                    index[T] = len(states)
                    states.append(None)
                    todo.append(T)
                nxt = index[T]
                t = terms[ps[0]]
                if key[0] == "SE":
                    prods.append(["SE", t, nxt])
                elif key[0] == "AT":
                    prods.append([P_AT, t[1], t[2], nxt])
                elif key[0] == "CH":
                    prods.append([P_CH, t[1], nxt])
                else:
                    prods.append([P_SEANY, nxt])
            if final:
                prods.append([P_EE])
            if mixed and (nattr is None or S is START or any(p >= nattr for p in S)):
                prods.append([P_CHMIXED, index[S]])
            states[index[S]] = (counted, prods)
        # resolve element grammars now (this recurses and clobbers self.pos)
        out = []
        for counted, prods in states:
            rp = []
            for pr in prods:
                if pr[0] == "SE":
                    t = pr[1]
                    rp.append((P_SE, self.qn(t[1]), t, pr[2]))
                else:
                    rp.append(tuple(pr))
            out.append([counted, rp])
        for st in out:
            new = []
            for pr in st[1]:
                if pr[0] == P_SE:
                    pr = (P_SE, pr[1], self.decl_grammar(pr[2]), pr[3])
                new.append(pr)
            st[1] = new
        return [(c, tuple(p)) for c, p in out]


def build(xsd_dir, fname, ns):
    schema = Schema(xsd_dir, fname)
    b = Builder(schema)
    globals_ = sorted(schema.elements, key=lambda k: (k[1], k[0]))
    roots = []
    for key in globals_:
        node = schema.elements[key][0]
        if node.get("abstract") == "true":
            continue
        gi = b.decl_grammar(("SE", key))
        roots.append((b.qn(key), gi))
    # repeating children per grammar: an SE whose qname is reachable again after itself
    lists = []
    for g in b.grammars:
        rep = set()
        seen_in = {}
        for si, (counted, prods) in enumerate(g):
            for pr in prods:
                if pr[0] == P_SE:
                    seen_in.setdefault(pr[1], []).append((si, pr[3]))
        # an element is a list if after reading it, the same qname is offered again
        for q, occ in seen_in.items():
            for si, nxt in occ:
                if any(p[0] == P_SE and p[1] == q for p in g[nxt][1]):
                    rep.add(q)
                elif g[nxt][0] is not None:
                    rep.add(q)
        lists.append(tuple(sorted(rep)))
    return b, roots, lists, ns


def render(b, roots, lists, ns, modname):
    out = []
    w = out.append
    w('"""EXI grammar tables for %s (generated by tools/gen_exi.py; do not edit)."""' % ns)
    w("NS = %r" % ns)
    w("# qualified names: (uri, local-name)")
    w("QNAMES = (")
    for q in b.qnames:
        w("    (%r, %r)," % q)
    w(")")
    w("# simple types: (kind, ...) kinds: 0 string 1 hex 2 base64 3 bool 4 uint 5 int 6 nbit(min, bits, max) 7 enum(values)")
    w("SIMPLE = (")
    for s in b.simple:
        w("    %r," % (s,))
    w(")")
    w("# document: global elements in event-code order: (qname, grammar)")
    w("ROOTS = %r" % (tuple(roots),))
    w("# grammars: tuple of states; state = (counted (min, max) or None, productions)")
    w("# productions: (0 SE, qname, grammar, next) (1 EE,) (2 AT, qname, simple, next)")
    w("#              (3 CH, simple, next) (4 SE(*), next) (5 CH untyped, next)")
    w("GRAMMARS = (")
    for g in b.grammars:
        w("    %r," % (tuple((c, tuple(p)) for c, p in g),))
    w(")")
    w("# per grammar: qnames of children that may repeat (JSON arrays)")
    w("LISTS = %r" % (tuple(lists),))
    return "\n".join(out) + "\n"


def generate(xsd_dir):
    files = {}
    for modname, fname, ns in TARGETS:
        b, roots, lists, ns = build(xsd_dir, fname, ns)
        files[modname + ".py"] = render(b, roots, lists, ns, modname)
    return files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--xsd-dir", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                  "controller", "iso15118"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    files = generate(args.xsd_dir)
    stale = []
    for name, text in sorted(files.items()):
        path = os.path.join(args.out, name)
        old = None
        if os.path.exists(path):
            with open(path) as f:
                old = f.read()
        if old != text:
            stale.append(name)
            if not args.check:
                with open(path, "w") as f:
                    f.write(text)
    if args.check:
        if stale:
            print("stale: %s (run tools/gen_exi.py --xsd-dir %s)" % (", ".join(stale), args.xsd_dir))
            return 1
        print("grammar tables up to date")
        return 0
    print("wrote %d modules (%d changed)" % (len(files), len(stale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
