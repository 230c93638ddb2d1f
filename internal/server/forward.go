package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/lease"
	"github.com/cairn-io/cairn/internal/membership"
)

// Requests only the leader can answer (lease renewals and time-to-live,
// learner promotion) are forwarded to it over the peer port when they reach
// a follower, as etcd does.

const (
	leaseRenewPath = "/leases/renew"
	leaseTTLPath   = "/leases/ttl"
)

// leaderPeer returns the leader's ID and peer URLs, waiting a little for a
// leader to be known.
func (s *Server) leaderPeer(ctx context.Context) (uint64, []string, error) {
	for {
		if lead := s.Leader(); lead != 0 {
			if m, ok := s.cluster.Member(lead); ok {
				return lead, m.PeerURLs, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, nil, ErrNoLeader
		case <-s.stopping:
			return 0, nil, ErrStopped
		case <-time.After(s.cfg.TickInterval):
		}
	}
}

// forwardTimeout bounds a request forwarded to the leader: the leader's
// own request timeout and an election timeout more, so that the leader's
// answer, even "request timed out", arrives before the follower gives up.
func (s *Server) forwardTimeout() time.Duration {
	return s.cfg.ReqTimeout() + s.cfg.ElectionTimeout
}

// forward POSTs body to path on the leader and returns the answer. A
// request the leader refused (503: not the leader, or not started) or
// that never reached it goes to the leader again, looked up afresh. One
// that may have reached it and failed is sent again only if repeatable: a
// membership change must not be made twice, and its outcome is then
// unknown (ErrTimeout).
func (s *Server) forward(ctx context.Context, path string, body []byte, repeatable bool) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.forwardTimeout())
	defer cancel()
	var lastErr error
	for ctx.Err() == nil {
		lead, urls, err := s.leaderPeer(ctx)
		if err != nil {
			return 0, nil, err
		}
		code, out, again, err := s.postToLeader(ctx, lead, urls, path, body, repeatable)
		if err == nil {
			return code, out, nil
		}
		if !again {
			return 0, nil, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if lastErr != nil {
		s.lg.Debug("forwarding to the leader failed", "path", path, "err", lastErr)
	}
	return 0, nil, ErrTimeout
}

// postToLeader POSTs body to path at the first of the leader's URLs that
// answers. again reports whether a failed request may be sent again: it
// did not reach the leader, the leader refused it before acting on it, or
// it is repeatable.
func (s *Server) postToLeader(ctx context.Context, lead uint64, urls []string, path string, body []byte, repeatable bool) (code int, out []byte, again bool, err error) {
	err = fmt.Errorf("member %x has no peer URL", lead)
	for _, u := range urls {
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(u, "/")+path, bytes.NewReader(body))
		if rerr != nil {
			return 0, nil, false, rerr
		}
		s.transport.SetHeaders(req.Header, lead)
		resp, derr := s.forwardClient().Do(req)
		if derr == nil {
			out, derr = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
		}
		switch {
		case derr != nil && (repeatable || notSent(derr)):
			err = derr
		case derr != nil:
			return 0, nil, false, fmt.Errorf("%w: %s on the leader, outcome unknown: %v", ErrTimeout, path, derr)
		case resp.StatusCode == http.StatusServiceUnavailable:
			// That member is no longer the leader, or not yet serving;
			// it did nothing.
			err = errors.New(strings.TrimSpace(string(out)))
		default:
			return resp.StatusCode, out, false, nil
		}
	}
	return 0, nil, true, err
}

// notSent reports whether a request failed before any of it reached the
// peer: no connection could be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (s *Server) forwardLeaseRenew(ctx context.Context, id int64) (int64, error) {
	body, _ := (&pb.LeaseKeepAliveRequest{ID: id}).Marshal()
	code, out, err := s.forward(ctx, leaseRenewPath, body, true)
	if err != nil {
		return -1, err
	}
	if code == http.StatusNotFound {
		return 0, nil
	}
	if code != http.StatusOK {
		return -1, fmt.Errorf("renewing lease %x on the leader: %s", id, strings.TrimSpace(string(out)))
	}
	var resp pb.LeaseKeepAliveResponse
	if err := resp.Unmarshal(out); err != nil {
		return -1, err
	}
	return resp.TTL, nil
}

func (s *Server) forwardLeaseTTL(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	body, _ := r.Marshal()
	code, out, err := s.forward(ctx, leaseTTLPath, body, true)
	if err != nil {
		return nil, err
	}
	if code == http.StatusNotFound {
		return nil, lease.ErrNotFound
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("lease time-to-live on the leader: %s", strings.TrimSpace(string(out)))
	}
	var resp pb.LeaseTimeToLiveResponse
	if err := resp.Unmarshal(out); err != nil {
		return nil, err
	}
	return &resp, nil
}

func readProto(w http.ResponseWriter, r *http.Request, m interface{ Unmarshal([]byte) error }) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = m.Unmarshal(body)
	}
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (s *Server) serveLeaseRenew(w http.ResponseWriter, r *http.Request) {
	var req pb.LeaseKeepAliveRequest
	if !readProto(w, r, &req) {
		return
	}
	if !s.IsLeader() {
		http.Error(w, ErrNotLeader.Error(), http.StatusServiceUnavailable)
		return
	}
	// The member that forwarded the renewal checked the client's
	// permissions.
	ttl, err := s.LeaseRenew(auth.AsInternal(r.Context()), req.ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if ttl == 0 {
		http.Error(w, lease.ErrNotFound.Error(), http.StatusNotFound)
		return
	}
	out, _ := (&pb.LeaseKeepAliveResponse{ID: req.ID, TTL: ttl}).Marshal()
	w.Write(out)
}

func (s *Server) serveLeaseTTL(w http.ResponseWriter, r *http.Request) {
	var req pb.LeaseTimeToLiveRequest
	if !readProto(w, r, &req) {
		return
	}
	if !s.IsLeader() {
		http.Error(w, ErrNotLeader.Error(), http.StatusServiceUnavailable)
		return
	}
	resp, err := s.LeaseTimeToLive(auth.AsInternal(r.Context()), &req)
	switch {
	case errors.Is(err, lease.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out, _ := resp.Marshal()
	w.Write(out)
}

// memberChangeErrors names the errors a membership change can end with,
// so a forwarded change fails on the follower with the leader's error.
var memberChangeErrors = map[string]error{
	"id-not-found":       membership.ErrIDNotFound,
	"id-removed":         membership.ErrIDRemoved,
	"id-exists":          membership.ErrIDExists,
	"peer-url-exists":    membership.ErrPeerURLExists,
	"not-learner":        membership.ErrNotLearner,
	"too-many-learners":  membership.ErrTooManyLearners,
	"learner-not-ready":  ErrLearnerNotReady,
	"not-enough-started": ErrNotEnoughStartedMembers,
	"unhealthy":          ErrUnhealthy,
	"timeout":            ErrTimeout,
	"no-leader":          ErrNoLeader,
	"not-leader":         ErrNotLeader,
	"bad-request":        ErrBadRequest,
	"stopped":            ErrStopped,
}

type memberChangeError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

const memberChangePath = "/members/change"

func (s *Server) serveMemberChange(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	var c memberChange
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&c); err != nil {
		http.Error(w, "bad member change: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !s.IsLeader() {
		http.Error(w, ErrNotLeader.Error(), http.StatusServiceUnavailable)
		return
	}
	res, err := s.changeMembers(r.Context(), c)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		name := ""
		for n, e := range memberChangeErrors {
			if errors.Is(err, e) {
				name = n
			}
		}
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(memberChangeError{Error: name, Message: err.Error()})
		return
	}
	json.NewEncoder(w).Encode(res)
}

func (s *Server) forwardMemberChange(ctx context.Context, c memberChange) (memberChangeResult, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return memberChangeResult{}, err
	}
	code, out, err := s.forward(ctx, memberChangePath, body, false)
	if err != nil {
		return memberChangeResult{}, err
	}
	switch code {
	case http.StatusOK:
		var res memberChangeResult
		if err := json.Unmarshal(out, &res); err != nil {
			return res, fmt.Errorf("member change on the leader: %w", err)
		}
		return res, nil
	case http.StatusConflict:
		var e memberChangeError
		if err := json.Unmarshal(out, &e); err == nil {
			if known, ok := memberChangeErrors[e.Error]; ok {
				return memberChangeResult{}, known
			}
			return memberChangeResult{}, errors.New(e.Message)
		}
	}
	return memberChangeResult{}, fmt.Errorf("member change on the leader: %s", strings.TrimSpace(string(out)))
}
