//go:build !linux

package goipc

import (
	"context"
	"time"
)

// Listener accepts goipc connections (Linux only).
type Listener struct{}

func Listen(path string, opts *Options) (*Listener, error) { return nil, ErrNotSupported }
func Dial(path string, opts *Options) (*Conn, error)       { return nil, ErrNotSupported }
func DialTimeout(path string, timeout time.Duration, opts *Options) (*Conn, error) {
	return nil, ErrNotSupported
}
func DialContext(ctx context.Context, path string, opts *Options) (*Conn, error) {
	return nil, ErrNotSupported
}
func (l *Listener) Accept() (*Conn, error)                             { return nil, ErrNotSupported }
func (l *Listener) AcceptTimeout(timeout time.Duration) (*Conn, error) { return nil, ErrNotSupported }
func (l *Listener) AcceptContext(ctx context.Context) (*Conn, error)   { return nil, ErrNotSupported }
func (l *Listener) Close() error                                       { return ErrNotSupported }
func (l *Listener) Addr() string                                       { return "" }
func (l *Listener) NotifyFD() (int, error)                             { return -1, ErrNotSupported }
func (l *Listener) DroppedErrors() uint64                              { return 0 }

func Pipe(opts *Options) (dialer, listener *Conn, err error) { return nil, nil, ErrNotSupported }
