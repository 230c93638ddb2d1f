package robustness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The network between members is a TCP proxy in front of every member's
// peer port: a member listens on one port and advertises the proxy's, so
// every peer connection to it passes through its proxy. A connection's
// sender is read from the first request on it (cairn's peer requests carry
// X-Cairn-From, the sender's member ID), which lets a proxy cut one
// direction of one link. Faults are rules on directed links:
//
//   - drop: existing connections are closed and new ones closed at once,
//     as a refused or reset connection would be;
//   - blackhole: connections are accepted and kept open, but nothing sent
//     on them arrives (the proxy reads and discards); when the rule is
//     lifted they are closed, since their streams lost bytes;
//   - delay: every chunk read is delivered after a delay (in order);
//   - stall: connections are accepted (their first request head read, to
//     learn the sender) and then never read again, in either direction, so
//     the sender's writes pile up and block; the connections that were
//     passing stop too. Stalled connections stay stuck and open even after
//     the rule is lifted, as flows a middlebox lost: only the members'
//     own timeouts end them. New connections pass once the rule is lifted.
//
// A connection whose sender is unknown (a request without X-Cairn-From,
// such as a joining member reading the member list) is matched only by
// rules that name no sender.

// linkMode is what happens to traffic on a link.
type linkMode int

const (
	linkPass linkMode = iota
	linkDrop
	linkBlackhole
	linkStall
)

func (m linkMode) String() string {
	return [...]string{"pass", "drop", "blackhole", "stall"}[m]
}

// anyMember in a rule's sender matches every sender, known or not.
const anyMember = "*"

type link struct{ from, to string }

// peerNetwork is the set of proxies of one cluster and the faults on it.
type peerNetwork struct {
	logf func(format string, args ...any)

	mu      sync.Mutex
	proxies map[string]*peerProxy // by member name
	ids     map[uint64]string     // member ID -> name
	rules   map[link]linkMode
	delay   time.Duration // added to every chunk
	jitter  time.Duration // plus up to this much more, uniformly
	rng     *rand.Rand
	closed  bool
}

func newPeerNetwork(seed int64, logf func(format string, args ...any)) *peerNetwork {
	return &peerNetwork{
		logf:    logf,
		proxies: map[string]*peerProxy{},
		ids:     map[uint64]string{},
		rules:   map[link]linkMode{},
		rng:     rand.New(rand.NewSource(seed)),
	}
}

// add starts a proxy for the member name whose peer port listens at
// listenURL and returns the URL the member advertises. It replaces (and
// closes) an earlier proxy of the same name. It fits
// framework.Config.AdvertisePeerURL.
func (n *peerNetwork) add(name, listenURL string) string {
	target := strings.TrimPrefix(listenURL, "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("peer proxy for %s: %v", name, err))
	}
	p := &peerProxy{net: n, name: name, target: target, ln: ln, conns: map[*proxyConn]struct{}{}}
	n.mu.Lock()
	old := n.proxies[name]
	n.proxies[name] = p
	n.mu.Unlock()
	if old != nil {
		old.close()
	}
	go p.serve()
	return "http://" + ln.Addr().String()
}

// learn records which member name an ID belongs to, so that connections
// from it are recognised.
func (n *peerNetwork) learn(id uint64, name string) {
	n.mu.Lock()
	n.ids[id] = name
	n.mu.Unlock()
}

// isolate cuts every link to and from name, in both directions.
func (n *peerNetwork) isolate(name string) {
	n.mu.Lock()
	n.rules[link{anyMember, name}] = linkDrop
	for other := range n.proxies {
		if other != name {
			n.rules[link{name, other}] = linkDrop
		}
	}
	n.mu.Unlock()
	n.logf("network: %s isolated", name)
	n.reapply()
}

// stall stalls every link to and from name, in both directions.
func (n *peerNetwork) stall(name string) {
	n.mu.Lock()
	n.rules[link{anyMember, name}] = linkStall
	for other := range n.proxies {
		if other != name {
			n.rules[link{name, other}] = linkStall
		}
	}
	n.mu.Unlock()
	n.logf("network: %s stalled", name)
	n.reapply()
}

// silence cuts every link from name to the others; what they send it
// still arrives.
func (n *peerNetwork) silence(name string) {
	n.mu.Lock()
	for other := range n.proxies {
		if other != name {
			n.rules[link{name, other}] = linkDrop
		}
	}
	n.mu.Unlock()
	n.logf("network: messages from %s cut", name)
	n.reapply()
}

// blackhole makes the link between a and b swallow everything, both ways.
func (n *peerNetwork) blackhole(a, b string) {
	n.mu.Lock()
	n.rules[link{a, b}] = linkBlackhole
	n.rules[link{b, a}] = linkBlackhole
	n.mu.Unlock()
	n.logf("network: blackhole between %s and %s", a, b)
	n.reapply()
}

// setDelay delays every chunk on every link by d plus up to jitter.
func (n *peerNetwork) setDelay(d, jitter time.Duration) {
	n.mu.Lock()
	n.delay, n.jitter = d, jitter
	n.mu.Unlock()
	n.logf("network: peer links delayed by %v (+ up to %v)", d, jitter)
}

// heal lifts every fault.
func (n *peerNetwork) heal() {
	n.mu.Lock()
	n.rules = map[link]linkMode{}
	n.delay, n.jitter = 0, 0
	n.mu.Unlock()
	n.logf("network: healed")
	n.reapply()
}

// name returns the name of the member with the given ID, empty if
// unknown. It is looked up whenever a rule is applied, so connections
// opened before the IDs were learnt are recognised too.
func (n *peerNetwork) name(id uint64) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ids[id]
}

// mode returns the fault on traffic from the member named from (empty if
// unknown) to the member named to.
func (n *peerNetwork) mode(from, to string) linkMode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.modeLocked(from, to)
}

func (n *peerNetwork) modeLocked(from, to string) linkMode {
	if from != "" {
		if m, ok := n.rules[link{from, to}]; ok {
			return m
		}
	}
	return n.rules[link{anyMember, to}]
}

// chunkDelay returns how long the next chunk waits.
func (n *peerNetwork) chunkDelay() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.delay
	if n.jitter > 0 {
		d += time.Duration(n.rng.Int63n(int64(n.jitter)))
	}
	return d
}

// reapply brings every open connection in line with the rules.
func (n *peerNetwork) reapply() {
	n.mu.Lock()
	var proxies []*peerProxy
	for _, p := range n.proxies {
		proxies = append(proxies, p)
	}
	n.mu.Unlock()
	for _, p := range proxies {
		p.reapply()
	}
}

// close stops every proxy.
func (n *peerNetwork) close() {
	n.mu.Lock()
	n.closed = true
	proxies := n.proxies
	n.proxies = map[string]*peerProxy{}
	n.mu.Unlock()
	for _, p := range proxies {
		p.close()
	}
}

// peerProxy forwards connections to one member's peer port.
type peerProxy struct {
	net    *peerNetwork
	name   string // the member behind it
	target string // host:port it forwards to
	ln     net.Listener

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	closed bool
}

// proxyConn is one proxied connection.
type proxyConn struct {
	from     uint64 // sender's member ID, 0 if unknown
	in, out  net.Conn
	mu       sync.Mutex
	mode     linkMode
	stuck    bool          // stalled once: it never moves again
	closed   chan struct{} // closed by close
	closeOne sync.Once
}

func (c *proxyConn) close() {
	c.closeOne.Do(func() {
		close(c.closed)
		c.in.Close()
		if c.out != nil {
			c.out.Close()
		}
	})
}

func (c *proxyConn) currentMode() linkMode {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stuck {
		return linkStall
	}
	return c.mode
}

// setMode sets the connection's mode; a stall sticks.
func (c *proxyConn) setMode(m linkMode) (old linkMode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old = c.mode
	c.mode = m
	if m == linkStall {
		c.stuck = true
	}
	return old
}

// waitClosed blocks a stalled connection's copier until the connection is
// closed: it reads nothing more.
func (c *proxyConn) waitClosed() { <-c.closed }

func (p *peerProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

// sniffLimit bounds how much of a connection is read to find its sender.
const sniffLimit = 64 << 10

func (p *peerProxy) handle(in net.Conn) {
	head, from := sniff(in)
	c := &proxyConn{from: from, in: in, closed: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		in.Close()
		return
	}
	c.setMode(p.net.mode(p.net.name(from), p.name))
	if c.mode == linkDrop {
		p.mu.Unlock()
		in.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()

	switch c.currentMode() {
	case linkBlackhole:
		// Swallow everything until the rule is lifted (which closes the
		// connection) or the sender gives up.
		io.Copy(io.Discard, in)
		return
	case linkStall:
		// Hold it, reading nothing, until the proxy closes.
		c.waitClosed()
		return
	}
	out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.out = out
	c.mu.Unlock()
	if len(head) > 0 {
		if _, err := out.Write(head); err != nil {
			return
		}
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(c, out, in); done <- struct{}{} }()
	go func() { p.pipe(c, in, out); done <- struct{}{} }()
	<-done
	c.close()
	<-done
}

// sniff reads the head of the first HTTP request on a connection and
// returns the bytes read and the sender's ID from X-Cairn-From.
func sniff(in net.Conn) ([]byte, uint64) {
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer in.SetReadDeadline(time.Time{})
	var head []byte
	buf := make([]byte, 4096)
	for len(head) < sniffLimit && !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := in.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			break
		}
	}
	end := bytes.Index(head, []byte("\r\n\r\n"))
	if end < 0 {
		return head, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(head[:end]))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "X-Cairn-From") {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			return head, 0
		}
		return head, id
	}
	return head, 0
}

// pipe copies src to dst, delaying each chunk as the network says and
// dropping whatever is read while the connection is blackholed.
func (p *peerProxy) pipe(c *proxyConn, dst, src net.Conn) {
	type chunk struct {
		data []byte
		at   time.Time
	}
	q := make(chan chunk, 4096)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for ch := range q {
			if d := time.Until(ch.at); d > 0 {
				timer.Reset(d)
				<-timer.C
			}
			if c.currentMode() != linkPass {
				continue
			}
			if _, err := dst.Write(ch.data); err != nil {
				c.close()
				for range q {
				}
				return
			}
		}
	}()
	var last time.Time
	buf := make([]byte, 32<<10)
	for {
		if c.currentMode() == linkStall {
			break
		}
		n, err := src.Read(buf)
		if n > 0 && c.currentMode() == linkPass {
			at := time.Now().Add(p.net.chunkDelay())
			if at.Before(last) {
				at = last
			}
			last = at
			q <- chunk{data: append([]byte(nil), buf[:n]...), at: at}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-writerDone
	if c.currentMode() == linkStall {
		c.waitClosed()
		return
	}
	dst.Close()
}

// reapply applies the network's rules to the open connections: dropped
// ones are closed, blackholed ones swallow, ones that leave a blackhole are
// closed, and stalled ones stop for good.
func (p *peerProxy) reapply() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		mode := p.net.mode(p.net.name(c.from), p.name)
		old := c.setMode(mode)
		if mode == linkDrop || (old == linkBlackhole && mode == linkPass) {
			c.close()
		}
	}
}

func (p *peerProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[*proxyConn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.close()
	}
}

// TestPeerProxy checks the proxy's faults on plain TCP: a connection
// naming its sender passes, is delayed, is swallowed by a blackhole, is
// stuck by a stall, is refused while its link is cut, and passes again
// after healing (a stalled one stays stuck).
func TestPeerProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	n := newPeerNetwork(1, t.Logf)
	defer n.close()
	url := n.add("b", "http://"+echo.Addr().String())
	n.learn(0xa, "a")
	n.learn(0xc, "c")
	n.add("a", "http://127.0.0.1:1")
	n.add("c", "http://127.0.0.1:1")

	head := func(from string) string {
		return "POST /raft/stream HTTP/1.1\r\nHost: x\r\nX-Cairn-From: " + from + "\r\n\r\n"
	}
	// roundTrip writes msg on a new connection from the given sender and
	// returns what came back within d.
	dial := func(from string) net.Conn {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, head(from)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	readFor := func(c net.Conn, want int, d time.Duration) (string, error) {
		c.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, want)
		n, err := io.ReadFull(c, buf)
		return string(buf[:n]), err
	}

	c := dial("a")
	if got, err := readFor(c, len(head("a")), 5*time.Second); err != nil || got != head("a") {
		t.Fatalf("passing link: read %q, %v", got, err)
	}

	n.setDelay(300*time.Millisecond, 0)
	start := time.Now()
	io.WriteString(c, "ping")
	if got, err := readFor(c, 4, 5*time.Second); err != nil || got != "ping" {
		t.Fatalf("delayed link: read %q, %v", got, err)
	}
	// Both directions are delayed.
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("delayed round trip took %v, want at least 600ms", took)
	}
	n.heal()

	n.blackhole("a", "b")
	io.WriteString(c, "lost")
	if got, err := readFor(c, 4, 500*time.Millisecond); err == nil || got != "" {
		t.Fatalf("blackholed link delivered %q (%v)", got, err)
	}
	// A connection from another member still passes.
	c2 := dial("c")
	if got, err := readFor(c2, len(head("c")), 5*time.Second); err != nil || got != head("c") {
		t.Fatalf("link c->b during a->b blackhole: read %q, %v", got, err)
	}
	n.heal()
	// Leaving the blackhole closes the connection: its stream lost bytes.
	if _, err := readFor(c, 1, 5*time.Second); !closedErr(err) {
		t.Fatalf("connection that left a blackhole: %v, want it closed", err)
	}

	// A stall stops the connections passing and holds new ones; lifting
	// it lets new connections pass but leaves the stalled ones stuck.
	c5 := dial("a")
	if got, err := readFor(c5, len(head("a")), 5*time.Second); err != nil || got != head("a") {
		t.Fatalf("passing link before a stall: read %q, %v", got, err)
	}
	n.stall("b")
	io.WriteString(c5, "held")
	if got, err := readFor(c5, 4, 500*time.Millisecond); err == nil || closedErr(err) || got != "" {
		t.Fatalf("stalled link: read %q, %v; want nothing, and the connection open", got, err)
	}
	c6 := dial("c")
	if got, err := readFor(c6, 1, 500*time.Millisecond); err == nil || closedErr(err) || got != "" {
		t.Fatalf("new connection to a stalled member: read %q, %v; want nothing, and the connection open", got, err)
	}
	n.heal()
	if got, err := readFor(c5, 4, 500*time.Millisecond); err == nil || closedErr(err) || got != "" {
		t.Fatalf("stalled connection after the stall was lifted: read %q, %v; want it still stuck", got, err)
	}
	c7 := dial("c")
	if got, err := readFor(c7, len(head("c")), 5*time.Second); err != nil || got != head("c") {
		t.Fatalf("new connection after a stall: read %q, %v", got, err)
	}

	n.isolate("b")
	c3 := dial("c")
	if _, err := readFor(c3, 1, 5*time.Second); !closedErr(err) {
		t.Fatalf("new connection to an isolated member: %v, want it closed", err)
	}
	// The established connection from c was closed too.
	if _, err := readFor(c2, 1, 5*time.Second); !closedErr(err) {
		t.Fatalf("connection to an isolated member: %v, want it closed", err)
	}
	n.heal()
	c4 := dial("c")
	if got, err := readFor(c4, len(head("c")), 5*time.Second); err != nil || got != head("c") {
		t.Fatalf("after heal: read %q, %v", got, err)
	}
}

// closedErr reports whether a read failed because the connection was
// closed, not because it timed out.
func closedErr(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}
