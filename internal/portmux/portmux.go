// Package portmux serves gRPC and plain HTTP on one listening port, as
// etcd's client port does: a connection that opens with the HTTP/2 client
// preface goes to the gRPC server, anything else to the HTTP server. The
// first bytes are read on the connection's own goroutine, so a slow or
// silent client never holds up the accept loop.
package portmux

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"
)

// h2Preface starts every HTTP/2 connection made without TLS (prior
// knowledge, which is how gRPC dials a plain-text endpoint).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Mux splits connections accepted on a listener between two virtual
// listeners.
type Mux struct {
	root        net.Listener
	grpc, http  *vlistener
	sniffTimout time.Duration
	closeOnce   sync.Once
	done        chan struct{}
}

// New returns a mux over l. Call Serve to start accepting.
func New(l net.Listener) *Mux {
	done := make(chan struct{})
	return &Mux{
		root:        l,
		grpc:        newVListener(l.Addr(), done),
		http:        newVListener(l.Addr(), done),
		sniffTimout: 10 * time.Second,
		done:        done,
	}
}

// GRPC returns the listener of HTTP/2 (gRPC) connections.
func (m *Mux) GRPC() net.Listener { return m.grpc }

// HTTP returns the listener of every other connection.
func (m *Mux) HTTP() net.Listener { return m.http }

// Serve accepts connections until the root listener is closed.
func (m *Mux) Serve() error {
	for {
		c, err := m.root.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.Close()
			select {
			case <-m.done:
				return nil
			default:
			}
			return err
		}
		go m.route(c)
	}
}

func (m *Mux) route(c net.Conn) {
	br := bufio.NewReaderSize(c, 64)
	c.SetReadDeadline(time.Now().Add(m.sniffTimout))
	head, err := br.Peek(3)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	pc := &peekedConn{Conn: c, r: br}
	target := m.http
	if string(head) == h2Preface[:3] {
		target = m.grpc
	}
	if !target.deliver(pc) {
		c.Close()
	}
}

// Close closes the root listener and both virtual listeners.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.root.Close()
	})
	return err
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// vlistener is a net.Listener fed by the mux.
type vlistener struct {
	addr      net.Addr
	conns     chan net.Conn
	done      chan struct{} // closed with the mux
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
}

func newVListener(addr net.Addr, done chan struct{}) *vlistener {
	return &vlistener{addr: addr, conns: make(chan net.Conn), done: done, closed: make(chan struct{})}
}

func (l *vlistener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	case <-l.closed:
		return false
	}
}

func (l *vlistener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close ends Accept, as servers expect when they shut down (gRPC's Stop
// waits for it), and makes the mux close this protocol's connections from
// then on. The port stays open for the other protocol: the mux owns it.
func (l *vlistener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *vlistener) Addr() net.Addr { return l.addr }
