package v2http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/membership"
)

// memberJSON is a member as /v2/members shows it.
type memberJSON struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
}

func toMemberJSON(m membership.Member) memberJSON {
	return memberJSON{
		ID:         hexID(m.ID),
		Name:       m.Name,
		PeerURLs:   append([]string{}, m.PeerURLs...),
		ClientURLs: append([]string{}, m.ClientURLs...),
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	json.NewEncoder(w).Encode(v)
}

func (h *Handler) serveMembers(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r.Method, "GET", "POST", "DELETE", "PUT") {
		return
	}
	srv := h.cfg.Server
	w.Header().Set("X-Etcd-Cluster-ID", hexID(srv.ClusterID()))
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.RequestTimeout)
	defer cancel()
	if r.Method != http.MethodGet {
		// Changes need root, as in etcd; anyone may list.
		ctx = auth.WithCredentials(ctx, requestCredentials(r), true)
		if err := srv.CheckAdmin(ctx); err != nil {
			if isAuthError(err) {
				h.lg.Info("v2 members request refused", "method", r.Method, "err", err)
				writeNoAuth(w)
				return
			}
			h.writeError(w, r, err)
			return
		}
	}

	switch r.Method {
	case http.MethodGet:
		switch trimPrefix(r.URL.Path, MembersPrefix) {
		case "":
			ms := srv.Members()
			out := struct {
				Members []memberJSON `json:"members"`
			}{Members: make([]memberJSON, len(ms))}
			for i, m := range ms {
				out.Members[i] = toMemberJSON(m)
			}
			writeJSON(w, http.StatusOK, out)
		case "leader":
			lead := srv.Leader()
			if lead == 0 {
				h.writeError(w, r, &httpError{Message: "During election", code: http.StatusServiceUnavailable})
				return
			}
			for _, m := range srv.Members() {
				if m.ID == lead {
					writeJSON(w, http.StatusOK, toMemberJSON(m))
					return
				}
			}
			h.writeError(w, r, &httpError{Message: "During election", code: http.StatusServiceUnavailable})
		default:
			h.writeError(w, r, &httpError{Message: "Not found", code: http.StatusNotFound})
		}

	case http.MethodPost:
		urls, ok := h.readPeerURLs(w, r)
		if !ok {
			return
		}
		m, _, err := srv.MemberAdd(ctx, urls, false)
		switch {
		case errors.Is(err, membership.ErrIDExists), errors.Is(err, membership.ErrPeerURLExists):
			h.writeError(w, r, &httpError{Message: err.Error(), code: http.StatusConflict})
		case err != nil:
			h.writeError(w, r, err)
		default:
			writeJSON(w, http.StatusCreated, toMemberJSON(m))
		}

	case http.MethodDelete:
		id, ok := h.memberID(w, r)
		if !ok {
			return
		}
		_, err := srv.MemberRemove(ctx, id)
		switch {
		case errors.Is(err, membership.ErrIDRemoved):
			h.writeError(w, r, &httpError{Message: "Member permanently removed: " + hexID(id), code: http.StatusGone})
		case errors.Is(err, membership.ErrIDNotFound):
			h.writeError(w, r, &httpError{Message: "No such member: " + hexID(id), code: http.StatusNotFound})
		case err != nil:
			h.writeError(w, r, err)
		default:
			w.WriteHeader(http.StatusNoContent)
		}

	case http.MethodPut:
		id, ok := h.memberID(w, r)
		if !ok {
			return
		}
		urls, ok := h.readPeerURLs(w, r)
		if !ok {
			return
		}
		_, err := srv.MemberUpdate(ctx, id, urls)
		switch {
		case errors.Is(err, membership.ErrPeerURLExists):
			h.writeError(w, r, &httpError{Message: err.Error(), code: http.StatusConflict})
		case errors.Is(err, membership.ErrIDNotFound):
			h.writeError(w, r, &httpError{Message: "No such member: " + hexID(id), code: http.StatusNotFound})
		case err != nil:
			h.writeError(w, r, err)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

// trimPrefix removes prefix and one slash after it.
func trimPrefix(p, prefix string) string {
	return strings.TrimPrefix(strings.TrimPrefix(p, prefix), "/")
}

// memberID reads the hex member ID after /v2/members/.
func (h *Handler) memberID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	s := trimPrefix(r.URL.Path, MembersPrefix)
	if s == "" {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return 0, false
	}
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		h.writeError(w, r, &httpError{Message: "No such member: " + s, code: http.StatusNotFound})
		return 0, false
	}
	return id, true
}

// readPeerURLs reads {"peerURLs":[...]} from a JSON body.
func (h *Handler) readPeerURLs(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	ctype := r.Header.Get("Content-Type")
	if i := strings.Index(ctype, ";"); i != -1 {
		ctype = strings.TrimSpace(strings.ToLower(ctype[:i]))
	}
	if ctype != "application/json" {
		h.writeError(w, r, &httpError{Message: fmt.Sprintf("Bad Content-Type %s, accept application/json", ctype),
			code: http.StatusUnsupportedMediaType})
		return nil, false
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		h.writeError(w, r, &httpError{Message: err.Error(), code: http.StatusBadRequest})
		return nil, false
	}
	var body struct {
		PeerURLs []string `json:"peerURLs"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		h.writeError(w, r, &httpError{Message: err.Error(), code: http.StatusBadRequest})
		return nil, false
	}
	urls, err := ParsePeerURLs(body.PeerURLs)
	if err != nil {
		h.writeError(w, r, &httpError{Message: err.Error(), code: http.StatusBadRequest})
		return nil, false
	}
	return urls, true
}

// ParsePeerURLs checks member URLs as etcd does (http or https with
// host:port and no path, or unix/unixs) and returns them sorted.
func ParsePeerURLs(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, errors.New("no valid URLs given")
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		// etcd's rules; a unix URL, which cairn cannot listen on, needs a
		// host:port as well, as in etcd 2.3.
		switch u.Scheme {
		case "http", "https", "unix", "unixs":
		default:
			return nil, fmt.Errorf("URL scheme must be http, https, unix, or unixs: %s", s)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("URL address does not have the form \"host:port\": %s", s)
		}
		if u.Path != "" {
			return nil, fmt.Errorf("URL must not contain a path: %s", s)
		}
		out = append(out, u.String())
	}
	sort.Strings(out)
	return out, nil
}

// serveMachines lists the members' client URLs, comma-separated.
func (h *Handler) serveMachines(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r.Method, "GET", "HEAD") {
		return
	}
	var urls []string
	for _, m := range h.cfg.Server.Members() {
		urls = append(urls, m.ClientURLs...)
	}
	sort.Strings(urls)
	w.Write([]byte(strings.Join(urls, ", ")))
}
