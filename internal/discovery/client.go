package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The few v2 keys API calls discovery makes, over plain HTTP.

// Node is a node of a v2 keys API response.
type Node struct {
	Key           string  `json:"key"`
	Value         string  `json:"value"`
	Dir           bool    `json:"dir"`
	Nodes         []*Node `json:"nodes"`
	CreatedIndex  uint64  `json:"createdIndex"`
	ModifiedIndex uint64  `json:"modifiedIndex"`
}

// response is a v2 keys API answer; Index is its X-Etcd-Index.
type response struct {
	Action string `json:"action"`
	Node   *Node  `json:"node"`
	Index  uint64 `json:"-"`
}

// Error is a v2 API error answer.
type Error struct {
	Code    int    `json:"errorCode"`
	Message string `json:"message"`
	Cause   string `json:"cause"`
	Index   uint64 `json:"index"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v: %v (%v) [%v]", e.Code, e.Message, e.Cause, e.Index)
}

const (
	errorCodeKeyNotFound = 100
	errorCodeNodeExist   = 105
)

var (
	// errCluster: the service could not be reached or failed (5xx); the
	// request is worth retrying.
	errCluster = errors.New("discovery service unavailable")
	// errInvalidJSON: the answer is not a v2 keys API answer.
	errInvalidJSON = errors.New("invalid JSON in the discovery service's response")
)

type client struct {
	endpoint string // scheme://host:port
	hc       *http.Client
}

// keyURL is the URL of key (a path such as /v2/keys/discovery/tok/x),
// each element escaped.
func (c *client) keyURL(key string, q url.Values) string {
	u := c.endpoint + (&url.URL{Path: key}).EscapedPath()
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func (c *client) get(ctx context.Context, key string) (*response, error) {
	return c.do(ctx, http.MethodGet, c.keyURL(key, url.Values{"quorum": {"false"}, "recursive": {"false"}, "sorted": {"false"}}), nil)
}

// create creates key with value, failing with error 105 if it exists.
func (c *client) create(ctx context.Context, key, value string) (*response, error) {
	body := url.Values{"value": {value}}.Encode()
	return c.do(ctx, http.MethodPut, c.keyURL(key, url.Values{"prevExist": {"false"}}), strings.NewReader(body))
}

// watch waits for the first event on key (below it if recursive) after
// index.
func (c *client) watch(ctx context.Context, key string, after uint64, recursive bool) (*response, error) {
	q := url.Values{"wait": {"true"}, "waitIndex": {strconv.FormatUint(after+1, 10)}}
	if recursive {
		q.Set("recursive", "true")
	}
	return c.do(ctx, http.MethodGet, c.keyURL(key, q), nil)
}

func (c *client) do(ctx context.Context, method, u string, body io.Reader) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", errCluster, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", errCluster, err)
	}
	if resp.StatusCode/100 == 5 {
		return nil, fmt.Errorf("%w: %s: %s", errCluster, resp.Status, strings.TrimSpace(string(b)))
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
		var r response
		if err := json.Unmarshal(b, &r); err != nil || r.Node == nil {
			return nil, errInvalidJSON
		}
		r.Index, _ = strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
		return &r, nil
	default:
		var e Error
		if err := json.Unmarshal(b, &e); err != nil || e.Code == 0 {
			return nil, errInvalidJSON
		}
		return nil, &e
	}
}
