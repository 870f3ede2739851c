package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/internal/progress"
)

// ShutdownGrace is how long requests in flight get to finish once the
// server is asked to stop, unless ListenOptions.Grace says otherwise;
// then their connections are closed.
const ShutdownGrace = 5 * time.Second

// ErrExposed is matched (errors.Is) by Listen's error when the exposure
// policy refuses the address: beyond loopback without TLS or without
// authentication, and not Insecure. Like a missing flag, it is a matter of
// how the server was asked to run.
var ErrExposed = errors.New("beyond loopback, TLS and authentication are required")

// exposedError is Listen's refusal: it reads as the error it wraps, and
// matches ErrExposed.
type exposedError struct{ error }

func (e exposedError) Unwrap() error      { return e.error }
func (exposedError) Is(target error) bool { return target == ErrExposed }

// ListenOptions say where and how a Server listens.
type ListenOptions struct {
	// Addr is host:port; a port of 0 picks a free one.
	Addr string
	// TLSCert and TLSKey are PEM files; with them the server speaks HTTPS
	// (TLS 1.2 or later) only.
	TLSCert, TLSKey string
	// Auth says that every request must authenticate.
	Auth bool
	// Insecure allows listening beyond loopback without TLS or without
	// Auth. Beyond loopback, plain HTTP exposes the content and any
	// password to the network, and no authentication lets anyone who can
	// reach the address pull everything; Listen refuses either unless
	// Insecure, and then warns.
	Insecure bool
	// Reporter gets the warnings, and the server's own errors (a failed
	// TLS handshake) as Logf lines.
	Reporter progress.Reporter
	// Grace is how long requests in flight get to finish once the server
	// is asked to stop; 0 means ShutdownGrace.
	Grace time.Duration
	// Stopping, if set, is called once the server is asked to stop while
	// requests are in flight, with how many and how long they get: a
	// command stopped with Ctrl-C says why it does not end at once.
	Stopping func(inFlight int, grace time.Duration)
}

// Server is a listening socket ready to serve.
type Server struct {
	ln       net.Listener
	tls      *tls.Config
	url      string
	rep      progress.Reporter
	stopping func(int, time.Duration)
	grace    time.Duration

	inFlight atomic.Int64
	cut      int // requests still in flight when the grace ended
}

// Listen binds opts.Addr, loads the TLS certificate, and applies the
// exposure policy: on a loopback address anything goes; beyond it TLS and
// authentication are required unless opts.Insecure.
func Listen(opts ListenOptions) (*Server, error) {
	rep := progress.OrNop(opts.Reporter)
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, errors.New("give the TLS certificate and its key together")
	}
	var cfg *tls.Config
	if opts.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate %s, key %s: %w", opts.TLSCert, opts.TLSKey, err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// The policy is applied to the address before anything listens on it,
	// and the address checked is the one bound.
	addr, err := net.ResolveTCPAddr("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	if !addr.IP.IsLoopback() {
		var missing []string
		if cfg == nil {
			missing = append(missing, "TLS (--tls-cert and --tls-key)")
		}
		if !opts.Auth {
			missing = append(missing, "authentication (--htpasswd)")
		}
		if len(missing) > 0 {
			what, them := strings.Join(missing, " and "), "it"
			if len(missing) > 1 {
				them = "them"
			}
			if !opts.Insecure {
				return nil, exposedError{fmt.Errorf("listen on %s: beyond loopback ferry serve needs %s; give %s, or --insecure to serve without", opts.Addr, what, them)}
			}
			rep.Warnf("serving on %s, beyond loopback, without %s: anyone who can reach it can read what it serves", opts.Addr, what)
		}
	}
	ln, err := net.ListenTCP("tcp", addr)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if cfg != nil {
		scheme = "https"
	}
	return &Server{ln: ln, tls: cfg, url: scheme + "://" + ln.Addr().String(), rep: rep, stopping: opts.Stopping, grace: orDefault(opts.Grace, ShutdownGrace)}, nil
}

// Close releases the address of a Server that will not Serve (Serve
// closes it when it returns).
func (s *Server) Close() error { return s.ln.Close() }

// URL is the server's base URL, "http://127.0.0.1:5000".
func (s *Server) URL() string { return s.url }

// Host is the server's host:port, the registry part of references.
func (s *Server) Host() string { return s.ln.Addr().String() }

// Serve answers requests with h until ctx ends, then stops accepting
// connections, lets the requests in flight finish for up to the grace
// (ListenOptions.Grace), and closes what is left (CutShort counts them). It
// returns nil after such a shutdown.
func (s *Server) Serve(ctx context.Context, h http.Handler) error {
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{
		Handler:           counted,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(logfWriter{s.rep}, "", 0),
	}
	served := make(chan error, 1)
	go func() {
		if s.tls != nil {
			served <- srv.ServeTLS(s.ln, "", "")
		} else {
			served <- srv.Serve(s.ln)
		}
	}()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	if n := s.inFlight.Load(); n > 0 && s.stopping != nil {
		s.stopping(int(n), s.grace)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Counted before the connections are closed: the handlers they
		// end then still count themselves out.
		s.cut = int(s.inFlight.Load())
		srv.Close()
		// Close does not wait for the handlers: a little while for them
		// to see their connection gone and log themselves as cut short,
		// before the caller says it stopped and closes the archive.
		for deadline := time.Now().Add(cutWait); s.inFlight.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// cutWait is how long Serve waits, once the grace is over and the
// connections closed, for the handlers cut short to end.
const cutWait = 2 * time.Second

// Grace is how long requests in flight get once Serve is asked to stop.
func (s *Server) Grace() time.Duration { return s.grace }

// CutShort is how many requests were still in flight when Serve's grace
// ended: their connections were closed, their clients got less than
// they asked for.
func (s *Server) CutShort() int { return s.cut }

// logfWriter passes the http.Server's own log lines to a Reporter.
type logfWriter struct{ rep progress.Reporter }

func (w logfWriter) Write(p []byte) (int, error) {
	w.rep.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
