package framework_test

import (
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/tests/framework"
)

// forwarder accepts connections on a port of its own and forwards them to
// a member's peer port.
type forwarder struct {
	mu  sync.Mutex
	lns []net.Listener
}

func (f *forwarder) add(t *testing.T) func(name, listenURL string) string {
	return func(name, listenURL string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.lns = append(f.lns, ln)
		f.mu.Unlock()
		target := strings.TrimPrefix(listenURL, "http://")
		go func() {
			for {
				in, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer in.Close()
					out, err := net.Dial("tcp", target)
					if err != nil {
						return
					}
					defer out.Close()
					go io.Copy(out, in)
					io.Copy(in, out)
				}()
			}
		}()
		return "http://" + ln.Addr().String()
	}
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ln := range f.lns {
		ln.Close()
	}
}

// TestAdvertisePeerURL puts a forwarder in front of every member's peer
// port: the members advertise the forwarders' URLs, form a cluster through
// them, and a member added later joins through them too.
func TestAdvertisePeerURL(t *testing.T) {
	var fw forwarder
	defer fw.close()
	c := framework.StartCluster(t, 3, framework.Config{Binary: framework.EtcdBinary(t), AdvertisePeerURL: fw.add(t)})
	cli := c.Client(t)
	members, err := cli.MemberList(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if m.AdvertisedPeerURL() == m.PeerURL() {
			t.Errorf("member %s advertises the URL it listens on, %s", m.Name(), m.PeerURL())
		}
		i := slices.IndexFunc(members.Members, func(x *etcdserverpb.Member) bool { return x.Name == m.Name() })
		if i < 0 || !slices.Equal(members.Members[i].PeerURLs, []string{m.AdvertisedPeerURL()}) {
			t.Errorf("member list %v does not give %s the peer URL %s", members.Members, m.Name(), m.AdvertisedPeerURL())
		}
	}

	nm := c.NewMember(t, "m3")
	// Members refuse to add one ("unhealthy cluster") until they have
	// been connected to each other for a few seconds.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cli.MemberAdd(ctx(t), []string{nm.AdvertisedPeerURL()})
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "unhealthy cluster") || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	nm.Restart(t)
	if _, err := cli.Put(ctx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, nm.Client(t), "k", "v")

	// Without the option a member advertises where it listens.
	m := framework.Start(t, framework.Config{Binary: framework.EtcdBinary(t)})
	if m.AdvertisedPeerURL() != m.PeerURL() {
		t.Errorf("AdvertisedPeerURL %s, PeerURL %s", m.AdvertisedPeerURL(), m.PeerURL())
	}
}
