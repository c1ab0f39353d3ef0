// Package sys wraps the Linux system calls goipc is built on: futex,
// memfd_create with file seals, mmap, and peer credentials.
//
// Everything Linux-specific lives here, behind _linux.go / _other.go pairs,
// so that the goipc package compiles on other systems and reports
// ErrNotSupported there instead of failing to build.
package sys
