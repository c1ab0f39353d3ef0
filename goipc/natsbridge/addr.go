package natsbridge

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/goipc/goipc/goipc"
)

// Defaults of the bridge's own protocol; each can be changed in the
// address's query (see address).
const (
	// DefaultHeartbeat is how often a side that has sent nothing else
	// sends a heartbeat.
	DefaultHeartbeat = 200 * time.Millisecond
	// DefaultPeerTimeout is how long a side waits without hearing from
	// its peer before it declares the peer gone. A dead peer is detected
	// within PeerTimeout + Heartbeat (1.4 s by default, under the 2 s goal;
	// 1 s made a busy machine declare a live peer dead; 1.5 s overshot
	// the 2 s goal under load).
	DefaultPeerTimeout = 1200 * time.Millisecond
	// DefaultQueue is the queue group listeners on one subject share.
	DefaultQueue = "goipc"
	// minWindow is the smallest receive window a side announces: enough
	// to keep a fast link busy with 1 KiB messages.
	minWindow = 4 << 20
)

// address is a parsed nats:// (or tls://) address:
//
//	nats://[user[:password]@]host:port[,host:port...]/subject[?query]
//
// Query parameters (all optional):
//
//	creds=FILE         NATS user credentials (JWT and seed)
//	nkey=FILE          an NKey seed file
//	tls_ca=FILE        CA certificate(s) for the server (comma-separated)
//	tls_cert=FILE, tls_key=FILE   a client certificate
//	tls=true           require TLS (implied by tls:// and the tls_ options)
//	name=NAME          the NATS client name shown by the server
//	queue=NAME         the listeners' queue group (default "goipc")
//	heartbeat=DUR      heartbeat interval (dialer only; default 200ms)
//	peer_timeout=DUR   silence that means the peer is gone (dialer only; default 1.2s)
//	window=BYTES       this side's receive window (default max(4 MiB, 4 messages))
//
// User and password (or a token as the user) go to the server as nats.go
// takes them from a URL.
type address struct {
	servers     string // comma-separated server URLs for nats.Connect, userinfo included
	redacted    string // servers without userinfo, for messages
	subject     string
	queue       string
	heartbeat   time.Duration
	peerTimeout time.Duration
	window      int64 // 0: the default
	natsOpts    []nats.Option
}

func parseAddress(addr string) (*address, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: address %q: %s", goipc.ErrInvalidArgument, redact(addr), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, bad("%v", err)
	}
	if u.Scheme != "nats" && u.Scheme != "tls" {
		return nil, bad("the scheme must be nats:// or tls://")
	}
	if u.Host == "" {
		return nil, bad("no server (want nats://host:port/subject)")
	}
	a := &address{
		subject:     strings.TrimPrefix(u.Path, "/"),
		queue:       DefaultQueue,
		heartbeat:   DefaultHeartbeat,
		peerTimeout: DefaultPeerTimeout,
	}
	if !validSubject(a.subject) {
		return nil, bad("%q is not a NATS subject to listen on (tokens separated by '.', no wildcards, no spaces)", a.subject)
	}
	var servers, plain []string
	for _, host := range strings.Split(u.Host, ",") {
		s := url.URL{Scheme: u.Scheme, User: u.User, Host: host}
		servers = append(servers, s.String())
		plain = append(plain, u.Scheme+"://"+host)
	}
	a.servers, a.redacted = strings.Join(servers, ","), strings.Join(plain, ",")

	q := u.Query()
	secure := u.Scheme == "tls"
	for key, vals := range q {
		v := vals[len(vals)-1]
		switch key {
		case "creds":
			a.natsOpts = append(a.natsOpts, nats.UserCredentials(v))
		case "nkey":
			opt, err := nats.NkeyOptionFromSeed(v)
			if err != nil {
				return nil, bad("nkey: %v", err)
			}
			a.natsOpts = append(a.natsOpts, opt)
		case "tls_ca":
			a.natsOpts = append(a.natsOpts, nats.RootCAs(strings.Split(v, ",")...))
			secure = true
		case "tls_cert", "tls_key":
			if q.Get("tls_cert") == "" || q.Get("tls_key") == "" {
				return nil, bad("tls_cert and tls_key go together")
			}
			if key == "tls_cert" {
				a.natsOpts = append(a.natsOpts, nats.ClientCert(q.Get("tls_cert"), q.Get("tls_key")))
			}
			secure = true
		case "tls":
			on, err := strconv.ParseBool(v)
			if err != nil {
				return nil, bad("tls=%q is not a boolean", v)
			}
			secure = secure || on
		case "name":
			a.natsOpts = append(a.natsOpts, nats.Name(v))
		case "queue":
			if !validSubject(v) || strings.Contains(v, ".") {
				return nil, bad("queue=%q is not a queue group name", v)
			}
			a.queue = v
		case "heartbeat", "peer_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d < 10*time.Millisecond || d > time.Hour {
				return nil, bad("%s=%q is not a duration in [10ms, 1h]", key, v)
			}
			if key == "heartbeat" {
				a.heartbeat = d
			} else {
				a.peerTimeout = d
			}
		case "window":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 4096 || n > 1<<32 {
				return nil, bad("window=%q is not a byte count in [4096, 4 GiB]", v)
			}
			a.window = n
		default:
			return nil, bad("unknown parameter %q", key)
		}
	}
	if a.peerTimeout < 2*a.heartbeat {
		return nil, bad("peer_timeout %v must be at least twice the heartbeat %v", a.peerTimeout, a.heartbeat)
	}
	if secure {
		a.natsOpts = append(a.natsOpts, nats.Secure())
	}
	return a, nil
}

// validSubject accepts a literal NATS subject: non-empty tokens of
// printable characters separated by dots, no wildcards.
func validSubject(s string) bool {
	if s == "" {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
		for _, r := range tok {
			if r <= ' ' || r == 0x7f {
				return false
			}
		}
	}
	return true
}

// redact removes a password or token from an address for messages.
func redact(addr string) string {
	u, err := url.Parse(addr)
	if err != nil || u.User == nil {
		if i := strings.Index(addr, "@"); i >= 0 {
			if j := strings.Index(addr, "://"); j >= 0 && j < i {
				return addr[:j+3] + "REDACTED" + addr[i:]
			}
		}
		return addr
	}
	u.User = url.User("REDACTED")
	return u.String()
}
