//! The zero-copy example in Rust (examples/README.md): messages built in
//! place in the ring and answers read in place, against the Go consumer
//! (`go run ./examples/zero-copy/go consumer --listen PATH`). An example of
//! the crate in bindings/rust (`cargo run --example zero_copy -- ...` there).
//!
//!   zero_copy --dial PATH [-n N] [--size B]
//!
//! For each message k, `Conn::reserve` gives `&mut [u8]` in the ring; byte
//! i is written there as (k + i) mod 256 and `Reservation::commit`
//! publishes it. The consumer answers with the 8-byte little-endian sum of
//! the bytes, which `Conn::recv_view` shows where it lies; dropping the
//! view gives its space back.

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let (mut path, mut n, mut size) = (None, 1000usize, 65536usize);
    let mut args = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match (flag.as_str(), value.parse()) {
            ("--dial", _) => path = Some(value),
            ("-n", Ok(v)) => n = v,
            ("--size", Ok(v)) => size = v,
            _ => path = None,
        }
    }
    let Some(path) = path else {
        eprintln!("usage: zero_copy --dial PATH [-n N] [--size B]");
        return ExitCode::from(2);
    };
    match produce(&path, n, size) {
        Ok(()) => {
            println!("producer rust: {n} messages of {size} bytes built and answered in place");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("producer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn produce(path: &str, n: usize, size: usize) -> Result<(), String> {
    let conn = goipc::Conn::dial(path, Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    for k in 0..n {
        let mut space = conn.reserve(size).map_err(|e| format!("message {k}: {e}"))?;
        let mut want = 0u64;
        for (i, byte) in space.iter_mut().enumerate() {
            *byte = (k + i) as u8; // mod 256
            want += u64::from(*byte);
        }
        space.commit(size).map_err(|e| format!("message {k}: {e}"))?;

        let answer = conn.recv_view_timeout(Duration::from_secs(10)).map_err(|e| format!("answer {k}: {e}"))?;
        let got = <[u8; 8]>::try_from(&answer[..]).map(u64::from_le_bytes).ok();
        drop(answer); // gives the space back
        if got != Some(want) {
            return Err(format!("message {k}: the consumer summed {got:?}, want {want}"));
        }
    }
    Ok(())
}
