//! Raw declarations of the C ABI, one for one with `include/goipc.h`.
//!
//! Written by hand (no bindgen at build time, no generated file to keep in
//! step). Each declaration goes through a macro that also records it as
//! text ([`FUNCTIONS`], [`CONSTANTS`], [`OPTIONS_FIELDS`],
//! [`STATS_FIELDS`], [`DIRECTION_STATS_FIELDS`], [`IOVEC_FIELDS`]); the test
//! `tests/header.rs` parses include/goipc.h and checks that every function
//! (name, parameter names and types, return type), every `#define
//! GOIPC_*` constant, the handle typedefs and the layout of every struct
//! (`goipc_options`, `goipc_stats`, `goipc_direction_stats`, `goipc_iovec`) match these,
//! in both directions. The layouts are also asserted at compile time below.
//!
//! Everything here is `unsafe` to call and follows the header's rules
//! (ownership, out-parameters written only on success, thread safety); the
//! safe API of this crate ([`crate::Conn`], [`crate::Listener`]) is built on
//! it. Use these directly only for what the safe API does not offer, such
//! as the C typed helpers `goipc_send_ping` .. `goipc_send_pong`.

#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int, c_void};

/// One function declaration, as written in this file (types as Rust text).
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    pub name: &'static str,
    /// (parameter name, Rust type)
    pub params: &'static [(&'static str, &'static str)],
    /// Rust return type; `"()"` for none.
    pub ret: &'static str,
}

/// One field of a `#[repr(C)]` struct, as declared in this file.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    /// Rust type as written.
    pub ty: &'static str,
    pub offset: usize,
    pub size: usize,
}

macro_rules! ffi_functions {
    ($( $(#[$m:meta])* pub fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? ; )*) => {
        unsafe extern "C" {
            $( $(#[$m])* pub fn $name( $($arg: $ty),* ) $(-> $ret)?; )*
        }
        /// Every function declared in this module, as written (for
        /// tests/header.rs).
        pub const FUNCTIONS: &[Signature] = &[
            $( Signature {
                name: stringify!($name),
                params: &[ $( (stringify!($arg), stringify!($ty)) ),* ],
                ret: ffi_functions!(@ret $($ret)?),
            } ),*
        ];
        /// The address of every function declared in this module, by name:
        /// taking them makes the linker resolve every symbol against
        /// libgoipc.so (tests/header.rs calls it).
        pub fn function_addresses() -> Vec<(&'static str, *const ())> {
            vec![ $( (stringify!($name), $name as *const ()) ),* ]
        }
    };
    (@ret) => { "()" };
    (@ret $r:ty) => { stringify!($r) };
}

macro_rules! ffi_constants {
    ($( $(#[$m:meta])* pub const $name:ident : $ty:ty = $val:expr ; )*) => {
        $( $(#[$m])* pub const $name: $ty = $val; )*
        /// Every `GOIPC_*` constant of this module with its value (for
        /// tests/header.rs).
        pub const CONSTANTS: &[(&str, i64)] = &[ $( (stringify!($name), $name as i64) ),* ];
    };
}

macro_rules! ffi_struct {
    ($(#[$sm:meta])* pub struct $sname:ident, fields = $fields:ident { $( $(#[$m:meta])* pub $f:ident : $ty:ty, )* }) => {
        $(#[$sm])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $sname { $( $(#[$m])* pub $f: $ty, )* }
        /// The fields of the struct in declaration order, with offsets
        /// (for tests/header.rs).
        pub const $fields: &[Field] = &[ $( Field {
            name: stringify!($f),
            ty: stringify!($ty),
            offset: core::mem::offset_of!($sname, $f),
            size: core::mem::size_of::<$ty>(),
        } ),* ];
    };
}

ffi_constants! {
    /// Version of the ABI these declarations describe.
    pub const GOIPC_ABI_VERSION: i32 = 1;
    pub const GOIPC_OK: i32 = 0;
    pub const GOIPC_ERR_INVALID_ARGUMENT: i32 = 1;
    pub const GOIPC_ERR_TIMEOUT: i32 = 2;
    pub const GOIPC_ERR_CLOSED: i32 = 3;
    pub const GOIPC_ERR_PEER_CLOSED: i32 = 4;
    pub const GOIPC_ERR_MESSAGE_TOO_LARGE: i32 = 5;
    pub const GOIPC_ERR_BUFFER_TOO_SMALL: i32 = 6;
    pub const GOIPC_ERR_PROTOCOL: i32 = 7;
    pub const GOIPC_ERR_PERMISSION: i32 = 8;
    pub const GOIPC_ERR_SYSTEM: i32 = 9;
    pub const GOIPC_ERR_ADDRESS_IN_USE: i32 = 10;
    pub const GOIPC_ERR_NOT_SUPPORTED: i32 = 11;
    pub const GOIPC_ERR_LIMIT: i32 = 12;
    /// Direction bit of a token reported by [`goipc_sweeper_sweep`]: send.
    pub const GOIPC_SWEEP_SEND: i32 = 0;
    /// Direction bit of a token reported by [`goipc_sweeper_sweep`]: receive.
    pub const GOIPC_SWEEP_RECV: i32 = 1;
}

/// Listener handle; 0 is never valid.
pub type goipc_listener = u64;
/// Connection handle; 0 is never valid.
pub type goipc_conn = u64;
/// Loop sweeper handle; 0 is never valid.
pub type goipc_sweeper = u64;

ffi_struct! {
    /// `goipc_options`: initialise with [`goipc_options_init_sized`] and
    /// this struct's size, then set fields (see the header for each
    /// field's meaning). The first 48 bytes are version 1 of the struct;
    /// the listener limits came with version 2 (80 bytes),
    /// `max_inflight_calls` with version 3 (88 bytes),
    /// `free_space_in_pieces` with version 4 (96 bytes).
    pub struct goipc_options, fields = OPTIONS_FIELDS {
        pub struct_size: u32,
        pub reserved0: u32,
        pub ring_size: u64,
        pub max_message_size: u64,
        pub spin_ns: i64,
        pub handshake_timeout_ms: i64,
        pub allow_any_uid: i32,
        pub protocol_version_override: u32,
        pub max_conns: i64,
        pub max_segment_size: i64,
        pub max_mapped_bytes: i64,
        pub max_pending_handshakes: i64,
        pub max_inflight_calls: i64,
        pub free_space_in_pieces: i32,
        pub reserved1: u32,
    }
}

/// Size of version 1 of `goipc_options`, which [`goipc_options_init`]
/// initialises (in every library version).
pub const OPTIONS_V1_SIZE: usize = 48;

impl goipc_options {
    /// All fields zero (every field's default) and `struct_size` 0: pass it
    /// to [`goipc_options_init_sized`] before use.
    pub const fn zeroed() -> goipc_options {
        goipc_options {
            struct_size: 0,
            reserved0: 0,
            ring_size: 0,
            max_message_size: 0,
            spin_ns: 0,
            handshake_timeout_ms: 0,
            allow_any_uid: 0,
            protocol_version_override: 0,
            max_conns: 0,
            max_segment_size: 0,
            max_mapped_bytes: 0,
            max_pending_handshakes: 0,
            max_inflight_calls: 0,
            free_space_in_pieces: 0,
            reserved1: 0,
        }
    }
}

ffi_struct! {
    /// `goipc_direction_stats`: one direction of a connection, as this end
    /// counts it (see the header for each field).
    pub struct goipc_direction_stats, fields = DIRECTION_STATS_FIELDS {
        pub messages: u64,
        pub bytes: u64,
        pub parks: u64,
        pub wakeups: u64,
        pub capacity: u64,
        pub in_use: u64,
        pub sender_parked: u32,
        pub receiver_parked: u32,
    }
}

ffi_struct! {
    /// `goipc_stats`, filled by [`goipc_conn_stats`]: set `struct_size` to
    /// this struct's size first; the library writes at most that many
    /// bytes and sets it to the number written.
    pub struct goipc_stats, fields = STATS_FIELDS {
        pub struct_size: u32,
        pub dialer: u32,
        pub peer_pid: i64,
        pub opened_unix_ns: i64,
        pub sent: goipc_direction_stats,
        pub received: goipc_direction_stats,
    }
}

impl goipc_stats {
    /// All zero, with `struct_size` set to this struct's size: ready for
    /// [`goipc_conn_stats`].
    pub const fn for_call() -> goipc_stats {
        let d = goipc_direction_stats {
            messages: 0,
            bytes: 0,
            parks: 0,
            wakeups: 0,
            capacity: 0,
            in_use: 0,
            sender_parked: 0,
            receiver_parked: 0,
        };
        goipc_stats {
            struct_size: core::mem::size_of::<goipc_stats>() as u32,
            dialer: 0,
            peer_pid: 0,
            opened_unix_ns: 0,
            sent: d,
            received: d,
        }
    }
}

ffi_struct! {
    /// `goipc_iovec`: one message of a batch for [`goipc_send_batch`],
    /// `len` bytes at `data` (which may be null only if `len` is 0).
    pub struct goipc_iovec, fields = IOVEC_FIELDS {
        pub data: *const c_void,
        pub len: usize,
    }
}

// The layout this crate depends on, checked at compile time (the header
// test checks the same against include/goipc.h, and at run time against
// the struct_size that goipc_options_init writes).
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<goipc_options>() == 96);
    assert!(align_of::<goipc_options>() == 8);
    assert!(offset_of!(goipc_options, struct_size) == 0);
    assert!(offset_of!(goipc_options, reserved0) == 4);
    assert!(offset_of!(goipc_options, ring_size) == 8);
    assert!(offset_of!(goipc_options, max_message_size) == 16);
    assert!(offset_of!(goipc_options, spin_ns) == 24);
    assert!(offset_of!(goipc_options, handshake_timeout_ms) == 32);
    assert!(offset_of!(goipc_options, allow_any_uid) == 40);
    assert!(offset_of!(goipc_options, protocol_version_override) == 44);
    assert!(offset_of!(goipc_options, max_conns) == 48);
    assert!(offset_of!(goipc_options, max_segment_size) == 56);
    assert!(offset_of!(goipc_options, max_mapped_bytes) == 64);
    assert!(offset_of!(goipc_options, max_pending_handshakes) == 72);
    assert!(offset_of!(goipc_options, max_inflight_calls) == 80);
    assert!(offset_of!(goipc_options, free_space_in_pieces) == 88);
    assert!(offset_of!(goipc_options, reserved1) == 92);
    assert!(size_of::<goipc_conn>() == 8 && size_of::<goipc_listener>() == 8);
    assert!(size_of::<goipc_direction_stats>() == 56);
    assert!(offset_of!(goipc_direction_stats, in_use) == 40);
    assert!(offset_of!(goipc_direction_stats, sender_parked) == 48);
    assert!(offset_of!(goipc_direction_stats, receiver_parked) == 52);
    assert!(size_of::<goipc_stats>() == 136);
    assert!(offset_of!(goipc_stats, dialer) == 4);
    assert!(offset_of!(goipc_stats, peer_pid) == 8);
    assert!(offset_of!(goipc_stats, opened_unix_ns) == 16);
    assert!(offset_of!(goipc_stats, sent) == 24);
    assert!(offset_of!(goipc_stats, received) == 80);
    assert!(size_of::<usize>() == size_of::<u64>()); // size_t on LP64 Linux
    assert!(size_of::<goipc_iovec>() == 16);
    assert!(offset_of!(goipc_iovec, data) == 0);
    assert!(offset_of!(goipc_iovec, len) == 8);
};

ffi_functions! {
    pub fn goipc_abi_version() -> i32;

    pub fn goipc_strerror(status: i32) -> *const c_char;
    pub fn goipc_last_errno() -> i32;
    pub fn goipc_last_error_message() -> *const c_char;

    pub fn goipc_options_init_sized(opts: *mut goipc_options, size: usize);
    /// Initialises only the first [`OPTIONS_V1_SIZE`] bytes (the version-1
    /// struct) and sets `struct_size` to 48: use
    /// [`goipc_options_init_sized`] with `size_of::<goipc_options>()`.
    pub fn goipc_options_init(opts: *mut goipc_options);

    pub fn goipc_listen(path: *const c_char, out: *mut goipc_listener) -> i32;
    pub fn goipc_listen_ex(path: *const c_char, opts: *const goipc_options, out: *mut goipc_listener) -> i32;
    pub fn goipc_accept(l: goipc_listener, timeout_ms: i64, out: *mut goipc_conn) -> i32;
    pub fn goipc_listener_close(l: goipc_listener) -> i32;
    pub fn goipc_listener_fd(l: goipc_listener, fd: *mut c_int) -> i32;
    pub fn goipc_listener_dropped_errors(l: goipc_listener, count: *mut u64) -> i32;

    pub fn goipc_dial(path: *const c_char, timeout_ms: i64, out: *mut goipc_conn) -> i32;
    pub fn goipc_dial_ex(path: *const c_char, opts: *const goipc_options, timeout_ms: i64, out: *mut goipc_conn) -> i32;
    pub fn goipc_conn_max_message_size(c: goipc_conn, out: *mut usize) -> i32;
    pub fn goipc_send(c: goipc_conn, data: *const c_void, len: usize, timeout_ms: i64) -> i32;
    pub fn goipc_recv(c: goipc_conn, buf: *mut c_void, cap: usize, len: *mut usize, timeout_ms: i64) -> i32;
    pub fn goipc_send_batch(
        c: goipc_conn,
        msgs: *const goipc_iovec,
        count: usize,
        sent: *mut usize,
        timeout_ms: i64,
    ) -> i32;
    pub fn goipc_recv_batch(
        c: goipc_conn,
        buf: *mut c_void,
        cap: usize,
        sizes: *mut usize,
        max_count: usize,
        count: *mut usize,
        timeout_ms: i64,
    ) -> i32;
    pub fn goipc_conn_close(c: goipc_conn) -> i32;
    pub fn goipc_conn_fd(c: goipc_conn, fd: *mut c_int) -> i32;
    pub fn goipc_sweeper_new(out: *mut goipc_sweeper) -> i32;
    pub fn goipc_sweeper_free(s: goipc_sweeper) -> i32;
    pub fn goipc_conn_set_sweeper(c: goipc_conn, s: goipc_sweeper, token: u64) -> i32;
    pub fn goipc_sweeper_sweep(s: goipc_sweeper, tokens: *mut u64, cap: usize, n: *mut usize) -> i32;
    pub fn goipc_sweeper_arm(s: goipc_sweeper, tokens: *mut u64, cap: usize, n: *mut usize) -> i32;
    pub fn goipc_conn_stats(c: goipc_conn, out: *mut goipc_stats) -> i32;

    pub fn goipc_reserve(c: goipc_conn, len: usize, timeout_ms: i64, out_ptr: *mut *mut c_void) -> i32;
    pub fn goipc_commit(c: goipc_conn, len: usize) -> i32;
    pub fn goipc_abort_reserve(c: goipc_conn) -> i32;

    pub fn goipc_recv_view(c: goipc_conn, out_ptr: *mut *const c_void, out_len: *mut usize, timeout_ms: i64) -> i32;
    pub fn goipc_release(c: goipc_conn) -> i32;

    pub fn goipc_send_ping(c: goipc_conn, seq: u64, payload: *const c_void, len: usize, timeout_ms: i64) -> i32;
    pub fn goipc_recv_pong(
        c: goipc_conn,
        seq: *mut u64,
        buf: *mut c_void,
        cap: usize,
        len: *mut usize,
        timeout_ms: i64,
    ) -> i32;
    pub fn goipc_recv_ping(
        c: goipc_conn,
        seq: *mut u64,
        sent_ns: *mut i64,
        buf: *mut c_void,
        cap: usize,
        len: *mut usize,
        timeout_ms: i64,
    ) -> i32;
    pub fn goipc_send_pong(
        c: goipc_conn,
        seq: u64,
        ping_sent_ns: i64,
        received_ns: i64,
        payload: *const c_void,
        len: usize,
        timeout_ms: i64,
    ) -> i32;

    pub fn goipc_call(
        c: goipc_conn,
        req: *const c_void,
        req_len: usize,
        resp: *mut c_void,
        resp_cap: usize,
        resp_len: *mut usize,
        timeout_ms: i64,
    ) -> i32;
    pub fn goipc_call_ex(
        c: goipc_conn,
        req: *const c_void,
        req_len: usize,
        resp: *mut c_void,
        resp_cap: usize,
        resp_len: *mut usize,
        timeout_ms: i64,
        pending: *mut u64,
    ) -> i32;
    pub fn goipc_call_start(c: goipc_conn, req: *const c_void, req_len: usize, timeout_ms: i64, pending: *mut u64) -> i32;
    pub fn goipc_call_end(
        c: goipc_conn,
        call: u64,
        resp: *mut c_void,
        resp_cap: usize,
        resp_len: *mut usize,
        timeout_ms: i64,
    ) -> i32;
    pub fn goipc_call_cancel(c: goipc_conn, call: u64) -> i32;
    pub fn goipc_conn_dropped_replies(c: goipc_conn, out: *mut u64) -> i32;
    pub fn goipc_recv_request(
        c: goipc_conn,
        call: *mut u64,
        buf: *mut c_void,
        cap: usize,
        len: *mut usize,
        timeout_ms: i64,
    ) -> i32;
    pub fn goipc_reply(c: goipc_conn, call: u64, data: *const c_void, len: usize, timeout_ms: i64) -> i32;
    pub fn goipc_call_ping(
        c: goipc_conn,
        seq: u64,
        payload: *const c_void,
        len: usize,
        pong_seq: *mut u64,
        buf: *mut c_void,
        cap: usize,
        out_len: *mut usize,
        timeout_ms: i64,
    ) -> i32;
    pub fn goipc_recv_ping_request(
        c: goipc_conn,
        call: *mut u64,
        seq: *mut u64,
        sent_ns: *mut i64,
        buf: *mut c_void,
        cap: usize,
        len: *mut usize,
        timeout_ms: i64,
    ) -> i32;
    pub fn goipc_reply_pong(
        c: goipc_conn,
        call: u64,
        seq: u64,
        ping_sent_ns: i64,
        received_ns: i64,
        payload: *const c_void,
        len: usize,
        timeout_ms: i64,
    ) -> i32;
}
