package main

// goipc_dial and goipc_listen take nats:// and tls:// addresses too: the
// bridge carries a connection over NATS (docs/NATS.md), with nothing new
// for C, Python or Rust callers to link.
import _ "github.com/goipc/goipc/goipc/natsbridge"
