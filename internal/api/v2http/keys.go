package v2http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/v2store"
)

// ParseKeyRequest turns a /v2/keys request into etcd's v2 request, checking
// its parameters in etcd's order so that a request with several faults
// gets etcd's error for the first. Parameters come from the query string
// or, for PUT and POST, a form body; the first of repeated parameters
// counts. now is the time a ttl counts from. noValueOnSuccess reports the
// parameter of that name. Every failure is a *v2store.Error with index 0.
func ParseKeyRequest(r *http.Request, now time.Time) (req pb.Request, noValueOnSuccess bool, err error) {
	if err := r.ParseForm(); err != nil {
		return pb.Request{}, false, requestError(v2store.EcodeInvalidForm, err.Error())
	}
	if !strings.HasPrefix(r.URL.Path, KeysPrefix) {
		return pb.Request{}, false, requestError(v2store.EcodeInvalidForm, "incorrect key prefix")
	}
	form := r.Form
	p := path.Join("/", r.URL.Path[len(KeysPrefix):])

	prevIndex, err := formUint(form, "prevIndex")
	if err != nil {
		return pb.Request{}, false, requestError(v2store.EcodeIndexNaN, `invalid value for "prevIndex"`)
	}
	waitIndex, err := formUint(form, "waitIndex")
	if err != nil {
		return pb.Request{}, false, requestError(v2store.EcodeIndexNaN, `invalid value for "waitIndex"`)
	}
	var flags [6]bool
	for i, name := range []string{"recursive", "sorted", "wait", "dir", "quorum", "stream"} {
		if flags[i], err = formBool(form, name); err != nil {
			return pb.Request{}, false, requestError(v2store.EcodeInvalidField, fmt.Sprintf("invalid value for %q", name))
		}
	}
	recursive, sorted, wait, dir, quorum, stream := flags[0], flags[1], flags[2], flags[3], flags[4], flags[5]
	if wait && r.Method != http.MethodGet {
		return pb.Request{}, false, requestError(v2store.EcodeInvalidField, `"wait" can only be used with GET requests`)
	}
	prevValue := form.Get("prevValue")
	if _, ok := form["prevValue"]; ok && prevValue == "" {
		return pb.Request{}, false, requestError(v2store.EcodePrevValueRequired, `"prevValue" cannot be empty`)
	}
	if noValueOnSuccess, err = formBool(form, "noValueOnSuccess"); err != nil {
		return pb.Request{}, false, requestError(v2store.EcodeInvalidField, `invalid value for "noValueOnSuccess"`)
	}
	// An absent or empty ttl means none (which, with prevExist=true,
	// removes a TTL).
	var ttl *uint64
	if form.Get("ttl") != "" {
		v, err := formUint(form, "ttl")
		if err != nil {
			return pb.Request{}, false, requestError(v2store.EcodeTTLNaN, `invalid value for "ttl"`)
		}
		ttl = &v
	}
	var prevExist *bool
	if _, ok := form["prevExist"]; ok {
		v, err := formBool(form, "prevExist")
		if err != nil {
			return pb.Request{}, false, requestError(v2store.EcodeInvalidField, "invalid value for prevExist")
		}
		prevExist = &v
	}
	var refresh *bool
	if _, ok := form["refresh"]; ok {
		v, err := formBool(form, "refresh")
		if err != nil {
			return pb.Request{}, false, requestError(v2store.EcodeInvalidField, "invalid value for refresh")
		}
		refresh = &v
		if v {
			if _, ok := form["value"]; ok && form.Get("value") != "" {
				return pb.Request{}, false, requestError(v2store.EcodeRefreshValue, "A value was provided on a refresh")
			}
			if ttl == nil {
				return pb.Request{}, false, requestError(v2store.EcodeRefreshTTLRequired, "No TTL value set")
			}
		}
	}
	req = pb.Request{
		Method:    r.Method,
		Path:      p,
		Val:       form.Get("value"),
		Dir:       dir,
		PrevValue: prevValue,
		PrevIndex: prevIndex,
		PrevExist: prevExist,
		Wait:      wait,
		Since:     waitIndex,
		Recursive: recursive,
		Sorted:    sorted,
		Quorum:    quorum,
		Stream:    stream,
		Refresh:   refresh,
		Time:      now.UnixNano(),
	}
	if ttl != nil {
		// As etcd: the TTL in seconds becomes an absolute expiration time
		// on this member's clock (the multiplication may wrap for absurd
		// TTLs, with etcd's results).
		req.Expiration = now.Add(time.Duration(*ttl) * time.Second).UnixNano()
	}
	return req, noValueOnSuccess, nil
}

func requestError(code int, cause string) *v2store.Error { return v2store.NewError(code, cause, 0) }

// formUint parses the first value of key; absent is 0.
func formUint(form url.Values, key string) (uint64, error) {
	if vs, ok := form[key]; ok {
		return strconv.ParseUint(vs[0], 10, 64)
	}
	return 0, nil
}

// formBool parses the first value of key as strconv.ParseBool does;
// absent is false.
func formBool(form url.Values, key string) (bool, error) {
	if vs, ok := form[key]; ok {
		return strconv.ParseBool(vs[0])
	}
	return false, nil
}

func (h *Handler) serveKeys(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r.Method, "HEAD", "GET", "PUT", "POST", "DELETE") {
		return
	}
	srv := h.cfg.Server
	w.Header().Set("X-Etcd-Cluster-ID", hexID(srv.ClusterID()))
	req, noValueOnSuccess, err := ParseKeyRequest(r, time.Now())
	if err != nil {
		h.writeKeyError(w, err)
		return
	}
	// As etcd, the request is not cancelled when the client goes away: a
	// proposal runs to its result.
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.RequestTimeout)
	defer cancel()
	ctx = auth.WithCredentials(ctx, requestCredentials(r), true)
	ev, wa, err := srv.V2Do(ctx, &req)
	if err != nil {
		h.writeKeyError(w, err)
		return
	}
	raftIndex, raftTerm := srv.CommittedIndex(), srv.Term()
	switch {
	case ev != nil:
		writeKeyEvent(w, ev, raftIndex, raftTerm, noValueOnSuccess)
	case wa != nil:
		h.serveWatch(w, r, wa, req.Stream, raftIndex, raftTerm)
	default:
		h.writeKeyError(w, errors.New("received response with no Event/Watcher"))
	}
}

// writeKeyError answers a keys request that failed. Member errors (no
// leader, timeouts) become error 300 with the error as cause, as etcd
// does.
func (h *Handler) writeKeyError(w http.ResponseWriter, err error) {
	if isAuthError(err) {
		h.lg.Info("v2 keys request refused", "err", err)
		writeKeyNoAuth(w)
		return
	}
	var ve *v2store.Error
	if !errors.As(err, &ve) {
		if errors.Is(err, context.DeadlineExceeded) {
			err = errTimeout
		}
		if !errors.Is(err, auth.ErrTooManyRequests) {
			h.lg.Warn("v2 keys request failed", "err", err)
		}
		ve = v2store.NewError(v2store.EcodeRaftInternal, err.Error(), 0)
	}
	writeV2Error(w, ve)
}

var errTimeout = errors.New("etcdserver: request timed out")

// writeKeyEvent answers with an event: 201 for a create or a set that
// created its key, else 200.
func writeKeyEvent(w http.ResponseWriter, ev *v2store.Event, raftIndex, raftTerm uint64, noValueOnSuccess bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Etcd-Index", fmt.Sprint(ev.EtcdIndex))
	w.Header().Set("X-Raft-Index", fmt.Sprint(raftIndex))
	w.Header().Set("X-Raft-Term", fmt.Sprint(raftTerm))
	if ev.IsCreated() {
		w.WriteHeader(http.StatusCreated)
	}
	out := ev.Clone()
	if noValueOnSuccess {
		switch out.Action {
		case v2store.Set, v2store.CompareAndSwap, v2store.Create, v2store.Update:
			out.Node, out.PrevNode = nil, nil
		}
	}
	json.NewEncoder(w).Encode(out)
}

// serveWatch sends the headers at once (a client learns the watch is in
// place), then the first matching event, or with stream every one until
// the client leaves, the watcher is dropped or the server shuts down.
func (h *Handler) serveWatch(w http.ResponseWriter, r *http.Request, wa *v2store.Watcher, stream bool, raftIndex, raftTerm uint64) {
	defer wa.Remove()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Etcd-Index", fmt.Sprint(wa.StartIndex()))
	w.Header().Set("X-Raft-Index", fmt.Sprint(raftIndex))
	w.Header().Set("X-Raft-Term", fmt.Sprint(raftTerm))
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.closing:
			return
		case ev, ok := <-wa.EventChan():
			if !ok {
				return
			}
			if err := enc.Encode(ev.Clone()); err != nil {
				return
			}
			if !stream {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}
