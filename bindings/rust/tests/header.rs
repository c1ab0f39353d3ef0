//! The hand-written declarations in src/sys.rs against include/goipc.h.
//!
//! Parses the header (a small parser for the subset of C it uses: fixed
//! width integer types, pointers, const, typedef'd structs, two typedefs,
//! `#define GOIPC_* <integer>`) and checks, in both directions: every
//! function's name, parameter names and types and return type; every
//! constant and its value; the handle typedefs; the fields, types, offsets
//! and size of every struct (goipc_options, goipc_stats,
//! goipc_direction_stats). Then it checks the loaded library: every
//! declared symbol resolves, goipc_options_init writes the struct size we
//! assume, the ABI version matches, every status has a description.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::PathBuf;

use goipc::sys;

fn header_path() -> PathBuf {
    match std::env::var_os("GOIPC_HEADER") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../include/goipc.h"),
    }
}

struct Header {
    /// name -> value of `#define GOIPC_X <integer>`
    constants: BTreeMap<String, i64>,
    /// typedef name -> C type
    typedefs: BTreeMap<String, String>,
    /// struct name -> (field name, C type), in order
    structs: BTreeMap<String, Vec<(String, String)>>,
    /// name -> (params [(name, Rust type)], Rust return type)
    functions: BTreeMap<String, (Vec<(String, String)>, String)>,
}

fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                let end = rest[b + 2..].find("*/").expect("unterminated comment");
                out.push(' ');
                rest = &rest[b + 2 + end + 2..];
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |e| &rest[l + e..]);
            }
            (None, None) => {
                out.push_str(rest);
                return out;
            }
            (Some(_), None) => unreachable!(),
        }
    }
}

/// "const goipc_options *opts" -> tokens, with '*' separate.
fn tokens(s: &str) -> Vec<String> {
    s.replace('*', " * ").split_whitespace().map(str::to_owned).collect()
}

/// C type tokens -> the Rust type sys.rs must use, whitespace-free.
fn rust_type(toks: &[String], typedefs: &BTreeMap<String, String>) -> String {
    let star = toks.iter().position(|t| t == "*").unwrap_or(toks.len());
    let base_toks: Vec<&str> = toks[..star].iter().map(String::as_str).collect();
    let base_const = base_toks.contains(&"const");
    let base: Vec<&str> = base_toks.iter().copied().filter(|t| *t != "const").collect();
    assert_eq!(base.len(), 1, "unsupported C type {toks:?}");
    let pointer = star < toks.len();
    let mut t = match base[0] {
        "int32_t" => "i32".to_owned(),
        "uint32_t" => "u32".to_owned(),
        "int64_t" => "i64".to_owned(),
        "uint64_t" => "u64".to_owned(),
        "size_t" => "usize".to_owned(),
        "int" => "c_int".to_owned(),
        "char" if pointer => "c_char".to_owned(),
        "void" if pointer => "c_void".to_owned(),
        "void" => "()".to_owned(),
        name if typedefs.contains_key(name) => name.to_owned(),
        other => panic!("unsupported C type {other} in {toks:?}"),
    };
    // Each '*' wraps the type so far; its pointee is const if `const`
    // qualified the base (first star) or followed the previous star.
    let mut pointee_const = base_const;
    let mut i = star;
    while i < toks.len() {
        assert_eq!(toks[i], "*", "unsupported C type {toks:?}");
        t = format!("*{}{}", if pointee_const { "const" } else { "mut" }, t);
        pointee_const = toks.get(i + 1).is_some_and(|x| x == "const");
        i += if pointee_const { 2 } else { 1 };
    }
    t
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn parse_header() -> Header {
    let path = header_path();
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let code = strip_comments(&src);

    let mut constants = BTreeMap::new();
    let mut body = String::new();
    for line in code.lines() {
        let l = line.trim();
        if let Some(def) = l.strip_prefix("#define ") {
            let mut it = def.split_whitespace();
            let name = it.next().unwrap();
            if name.contains('(') {
                // A function-like macro (goipc_options_init mapped to
                // goipc_options_init_sized): C sugar, not an ABI symbol.
                continue;
            }
            if let Some(v) = it.next() {
                let v: i64 = v.parse().unwrap_or_else(|_| panic!("#define {name} {v}: not an integer"));
                assert!(it.next().is_none(), "#define {name}: unexpected tokens");
                constants.insert(name.to_owned(), v);
            }
            continue;
        }
        if l.starts_with('#') || l == "extern \"C\" {" || l == "}" {
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }

    // The structs: `typedef struct NAME { fields } NAME;`, cut out of the
    // body, which then holds only typedefs and functions.
    let mut structs = BTreeMap::new();
    let mut rest = body;
    while let Some(s) = rest.find("typedef struct ") {
        let open = s + rest[s..].find('{').expect("typedef struct without {");
        let name = rest["typedef struct ".len() + s..open].trim().to_owned();
        let close = format!("}} {name};");
        let e = open + rest[open..].find(&close).unwrap_or_else(|| panic!("end of {name}"));
        let mut fields = Vec::new();
        for f in rest[open + 1..e].split(';').map(str::trim).filter(|f| !f.is_empty()) {
            let t = tokens(f);
            let (fname, ty) = t.split_last().unwrap();
            fields.push((fname.clone(), ty.join(" ")));
        }
        assert!(structs.insert(name.clone(), fields).is_none(), "struct {name} twice");
        rest = format!("{}{}", &rest[..s], &rest[e + close.len()..]);
    }

    let mut typedefs = BTreeMap::new();
    let mut functions = BTreeMap::new();
    for stmt in rest.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let stmt = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(td) = stmt.strip_prefix("typedef ") {
            let t = tokens(td);
            let (name, ty) = t.split_last().unwrap();
            typedefs.insert(name.clone(), ty.join(" "));
            continue;
        }
        // Types a function may name: the handle typedefs and the structs.
        let mut known = typedefs.clone();
        known.extend(structs.keys().map(|n| (n.clone(), "struct".to_owned())));
        let open = stmt.find('(').unwrap_or_else(|| panic!("unexpected statement in header: {stmt}"));
        assert!(stmt.ends_with(')'), "unexpected statement in header: {stmt}");
        let head = tokens(&stmt[..open]);
        let (name, ret) = head.split_last().unwrap();
        let params_src = &stmt[open + 1..stmt.len() - 1];
        let mut params = Vec::new();
        if params_src.trim() != "void" {
            for p in params_src.split(',') {
                let t = tokens(p);
                let (pname, pty) = t.split_last().unwrap();
                params.push((pname.clone(), rust_type(pty, &known)));
            }
        }
        let prev = functions.insert(name.clone(), (params, rust_type(ret, &known)));
        assert!(prev.is_none(), "{name} declared twice");
    }
    Header { constants, typedefs, structs, functions }
}

#[test]
fn functions_match_header() {
    let h = parse_header();
    assert!(h.functions.len() >= 20, "parsed only {} functions: parser broken?", h.functions.len());
    let ours: BTreeMap<&str, &sys::Signature> = sys::FUNCTIONS.iter().map(|s| (s.name, s)).collect();
    assert_eq!(ours.len(), sys::FUNCTIONS.len(), "a function is declared twice in sys.rs");
    for name in h.functions.keys() {
        assert!(ours.contains_key(name.as_str()), "{name} is in goipc.h but not in src/sys.rs");
    }
    for name in ours.keys() {
        assert!(h.functions.contains_key(*name), "{name} is in src/sys.rs but not in goipc.h");
    }
    for (name, (params, ret)) in &h.functions {
        let s = ours[name.as_str()];
        assert_eq!(squash(s.ret), *ret, "{name}: return type");
        let got: Vec<(String, String)> = s.params.iter().map(|(n, t)| (n.to_string(), squash(t))).collect();
        assert_eq!(&got, params, "{name}: parameters (name, type)");
    }
}

#[test]
fn constants_match_header() {
    let h = parse_header();
    let ours: BTreeMap<String, i64> = sys::CONSTANTS.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    let theirs: BTreeMap<String, i64> =
        h.constants.iter().filter(|(n, _)| n.starts_with("GOIPC_")).map(|(n, v)| (n.clone(), *v)).collect();
    assert!(theirs.len() >= 13, "parsed only {} constants", theirs.len());
    assert_eq!(ours, theirs, "GOIPC_* constants: src/sys.rs (left) vs goipc.h (right)");
}

#[test]
fn typedefs_match_header() {
    let h = parse_header();
    let want: BTreeMap<String, String> =
        [("goipc_listener", "uint64_t"), ("goipc_conn", "uint64_t"), ("goipc_sweeper", "uint64_t")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
    assert_eq!(h.typedefs, want);
    // Compiles only if both aliases are exactly u64.
    let l: sys::goipc_listener = 0u64;
    let c: sys::goipc_conn = 0u64;
    let s: sys::goipc_sweeper = 0u64;
    assert_eq!(l, c);
    assert_eq!(c, s);
}

/// One struct field as (name, Rust type, offset, size).
type FieldLayout = (String, String, usize, usize);

/// The C layout of a struct of the header (x86-64 / aarch64 SysV): each
/// field at the next multiple of its alignment, the struct padded to its
/// alignment. Returns the fields, the size and the alignment.
fn c_layout(h: &Header, name: &str) -> (Vec<FieldLayout>, usize, usize) {
    let fields = h.structs.get(name).unwrap_or_else(|| panic!("struct {name} is not in goipc.h"));
    let mut off = 0usize;
    let mut align = 1usize;
    let mut out = Vec::new();
    for (fname, cty) in fields {
        let (rty, size, falign) = match cty.as_str() {
            "uint32_t" => ("u32".to_owned(), 4, 4),
            "int32_t" => ("i32".to_owned(), 4, 4),
            "uint64_t" => ("u64".to_owned(), 8, 8),
            "int64_t" => ("i64".to_owned(), 8, 8),
            "size_t" => ("usize".to_owned(), 8, 8),
            "const void *" => ("*constc_void".to_owned(), 8, 8),
            inner if h.structs.contains_key(inner) => {
                let (_, size, a) = c_layout(h, inner);
                (inner.to_owned(), size, a)
            }
            other => panic!("{name}.{fname}: unsupported type {other}"),
        };
        off = off.next_multiple_of(falign);
        out.push((fname.clone(), rty, off, size));
        off += size;
        align = align.max(falign);
    }
    (out, off.next_multiple_of(align), align)
}

/// Checks the sys.rs struct T (its recorded fields) against the header's.
fn check_layout<T>(h: &Header, name: &str, ours: &[sys::Field]) {
    let (want, c_size, c_align) = c_layout(h, name);
    let ours: Vec<FieldLayout> = ours.iter().map(|f| (f.name.to_owned(), squash(f.ty), f.offset, f.size)).collect();
    assert_eq!(ours, want, "{name} fields (name, type, offset, size): src/sys.rs vs goipc.h");
    let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
    assert_eq!((size, align), (c_size, c_align), "{name} size and alignment: src/sys.rs vs goipc.h");
}

#[test]
fn struct_layouts_match_header() {
    let h = parse_header();
    let names: Vec<&str> = h.structs.keys().map(String::as_str).collect();
    assert_eq!(names, ["goipc_direction_stats", "goipc_iovec", "goipc_options", "goipc_stats"], "structs in goipc.h");
    check_layout::<sys::goipc_options>(&h, "goipc_options", sys::OPTIONS_FIELDS);
    check_layout::<sys::goipc_stats>(&h, "goipc_stats", sys::STATS_FIELDS);
    check_layout::<sys::goipc_direction_stats>(&h, "goipc_direction_stats", sys::DIRECTION_STATS_FIELDS);
    check_layout::<sys::goipc_iovec>(&h, "goipc_iovec", sys::IOVEC_FIELDS);
}

fn sevens() -> sys::goipc_options {
    sys::goipc_options {
        struct_size: 7,
        reserved0: 7,
        ring_size: 7,
        max_message_size: 7,
        spin_ns: 7,
        handshake_timeout_ms: 7,
        allow_any_uid: 7,
        protocol_version_override: 7,
        max_conns: 7,
        max_segment_size: 7,
        max_mapped_bytes: 7,
        max_pending_handshakes: 7,
        max_inflight_calls: 7,
        free_space_in_pieces: 7,
        reserved1: 7,
    }
}

/// goipc_options_init_sized zeroes the whole struct we declare and
/// records its size; goipc_options_init touches only the 48-byte
/// version-1 struct.
#[test]
fn options_init_sized_writes_our_struct_size() {
    let size = std::mem::size_of::<sys::goipc_options>();
    let mut o = sevens();
    // SAFETY: o is a valid goipc_options of `size` bytes.
    unsafe { sys::goipc_options_init_sized(&mut o, size) };
    assert_eq!(o, sys::goipc_options { struct_size: size as u32, ..sys::goipc_options::zeroed() });

    let mut v1 = sevens();
    // SAFETY: o is a valid goipc_options (larger than the 48 bytes written).
    unsafe { sys::goipc_options_init(&mut v1) };
    assert_eq!(v1.struct_size as usize, sys::OPTIONS_V1_SIZE);
    assert_eq!((v1.ring_size, v1.protocol_version_override), (0, 0));
    assert_eq!((v1.max_conns, v1.max_pending_handshakes), (7, 7), "wrote past the version-1 struct");

    // NULL-safe, and sizes outside [48, 4096] are ignored.
    let mut small = sevens();
    // SAFETY: documented to do nothing for NULL or a size below 48.
    unsafe {
        sys::goipc_options_init_sized(std::ptr::null_mut(), size);
        sys::goipc_options_init(std::ptr::null_mut());
        sys::goipc_options_init_sized(&mut small, 47);
    }
    assert_eq!(small, sevens());
}

#[test]
fn every_symbol_resolves() {
    let addrs = sys::function_addresses();
    assert_eq!(addrs.len(), sys::FUNCTIONS.len());
    for (name, p) in addrs {
        assert!(!p.is_null(), "{name}");
    }
}

#[test]
fn abi_version_matches() {
    assert_eq!(goipc::abi_version(), sys::GOIPC_ABI_VERSION);
    // SAFETY: no arguments.
    assert_eq!(unsafe { sys::goipc_abi_version() }, sys::GOIPC_ABI_VERSION);
}

#[test]
fn every_status_has_a_description() {
    for (name, v) in sys::CONSTANTS {
        if *name == "GOIPC_ABI_VERSION" {
            continue;
        }
        let s = goipc::strerror(*v as i32);
        assert!(!s.is_empty() && s != "goipc: unknown status code", "{name}: {s:?}");
        // SAFETY: any value; static string.
        let raw = unsafe { CStr::from_ptr(sys::goipc_strerror(*v as i32)) };
        assert_eq!(raw.to_str().unwrap(), s);
    }
    assert_eq!(goipc::strerror(-1), "goipc: unknown status code");
    assert_eq!(goipc::strerror(1000), "goipc: unknown status code");
}

/// The parser itself, on declarations shaped like the header's.
#[test]
fn parser_types() {
    let td: BTreeMap<String, String> =
        [("goipc_conn".to_owned(), "uint64_t".to_owned()), ("goipc_options".to_owned(), "struct".to_owned())].into();
    let t = |s: &str| rust_type(&tokens(s), &td);
    assert_eq!(t("const void **"), "*mut*constc_void");
    assert_eq!(t("void **"), "*mut*mutc_void");
    assert_eq!(t("void * const *"), "*const*mutc_void");
    assert_eq!(t("const char *"), "*constc_char");
    assert_eq!(t("size_t *"), "*mutusize");
    assert_eq!(t("goipc_conn"), "goipc_conn");
    assert_eq!(t("void"), "()");
    assert_eq!(t("const goipc_options *"), "*constgoipc_options");
    assert_eq!(strip_comments("a /* x */ b // y\nc"), "a   b \nc");
}
