package main

// The Go peer takes nats:// addresses too (the NATS matrix, nats_run.py).
import _ "github.com/goipc/goipc/goipc/natsbridge"
