package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/tributary-sync/tributary/checkpoint"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
	"github.com/tributary-sync/tributary/eventstream"
)

// Client is the Service of a running node, over its HTTP API.
type Client struct {
	Base  string // e.g. http://127.0.0.1:7465
	Token string
	HTTP  *http.Client
}

var _ service.Service = (*Client)(nil)

// ClientFor returns a client of the node running on a home, as its
// run.json and api-token describe it.
func ClientFor(h *node.Home, ri node.RunInfo) (*Client, error) {
	tok, err := h.Token()
	if err != nil {
		return nil, err
	}
	c := &Client{Base: "http://" + ri.HTTP, Token: tok, HTTP: &http.Client{}}
	if ri.TLS {
		c.Base = "https://" + ri.HTTP
		tc := &tls.Config{}
		if ri.Cert != "" {
			pem, err := os.ReadFile(ri.Cert)
			if err != nil {
				return nil, fmt.Errorf("certificate of the running node: %w", err)
			}
			pool, _ := x509.SystemCertPool()
			if pool == nil {
				pool = x509.NewCertPool()
			}
			pool.AppendCertsFromPEM(pem)
			tc.RootCAs = pool
		}
		c.HTTP.Transport = &http.Transport{TLSClientConfig: tc}
	}
	return c, nil
}

func sp(space string) string {
	if space == "" {
		space = "-" // the home's only space
	}
	return "/v1/spaces/" + url.PathEscape(space)
}

// do sends a request and decodes a JSON reply into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, ctype = b, TypeBundle
	case rawBody:
		rd, ctype = bytes.NewReader(b.data), b.ctype
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd, ctype = bytes.NewReader(data), TypeJSON
	}
	resp, err := c.send(ctx, method, path, query, rd, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("the running node sent a bad reply: %w", err)
	}
	return nil
}

// rawBody is a body of a given type.
type rawBody struct {
	data  []byte
	ctype string
}

func (c *Client) send(ctx context.Context, method, path string, query url.Values, body io.Reader, ctype string) (*http.Response, error) {
	u := c.Base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the node running on this home (%s) did not answer: %w", c.Base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var we wireError
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(data, &we) != nil || we.Error == "" {
			we.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		re := &RemoteError{Status: resp.StatusCode, Code: we.Code, Message: we.Error}
		if we.Operation > 0 && we.Code != "invalid_input" {
			return nil, &replica.MutationError{Index: we.Operation - 1, Err: re}
		}
		return nil, re
	}
	return resp, nil
}

func (c *Client) Status(ctx context.Context, space string) (service.Status, error) {
	var out service.Status
	return out, c.do(ctx, "GET", sp(space), nil, nil, &out)
}

func (c *Client) Spaces(ctx context.Context) ([]node.SpaceInfo, error) {
	var out []node.SpaceInfo
	return out, c.do(ctx, "GET", "/v1/spaces", nil, nil, &out)
}

func (c *Client) CreateSpace(ctx context.Context, req service.CreateSpace) (service.SpaceCreated, error) {
	var out service.SpaceCreated
	return out, c.do(ctx, "POST", "/v1/spaces", nil, req, &out)
}

func (c *Client) Join(ctx context.Context, code string) (service.Joined, error) {
	var out service.Joined
	return out, c.do(ctx, "POST", "/v1/join", nil, map[string]string{"code": code}, &out)
}

func (c *Client) Import(ctx context.Context, bundle io.Reader) (service.Imported, error) {
	var out service.Imported
	return out, c.do(ctx, "POST", "/v1/import", nil, bundle, &out)
}

func (c *Client) RotateToken(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/token/rotate", nil, map[string]string{}, nil)
}

func docPath(space, coll, id string) string {
	p := sp(space) + "/docs/" + url.PathEscape(coll)
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	return p
}

func (c *Client) Put(ctx context.Context, space, coll, id string, doc map[string]any) (service.Written, error) {
	var out service.Written
	method := "PUT"
	if id == "" {
		method = "POST"
	}
	return out, c.do(ctx, method, docPath(space, coll, id), nil, doc, &out)
}

func (c *Client) Delete(ctx context.Context, space, coll, id string) (service.Written, error) {
	var out service.Written
	return out, c.do(ctx, "DELETE", docPath(space, coll, id), nil, nil, &out)
}

func (c *Client) Batch(ctx context.Context, space string, muts []replica.Mutation) (service.BatchWritten, error) {
	var out service.BatchWritten
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, m := range muts {
		if err := enc.Encode(m); err != nil {
			return out, err
		}
	}
	return out, c.do(ctx, "POST", sp(space)+"/batch", nil, rawBody{buf.Bytes(), TypeNDJSON}, &out)
}

func (c *Client) Get(ctx context.Context, space, coll, id, at string) (service.Doc, error) {
	var out service.Doc
	q := url.Values{}
	if at != "" {
		q.Set("at", at)
	}
	return out, c.do(ctx, "GET", docPath(space, coll, id), q, nil, &out)
}

func (c *Client) Query(ctx context.Context, space, coll string, where map[string]string) ([]service.Doc, error) {
	var out []service.Doc
	q := url.Values{}
	for k, v := range where {
		q.Set(k, v)
	}
	return out, c.do(ctx, "GET", docPath(space, coll, ""), q, nil, &out)
}

func (c *Client) History(ctx context.Context, space, coll, id string) ([]replica.Entry, error) {
	var out []replica.Entry
	return out, c.do(ctx, "GET", docPath(space, coll, id)+"/history", nil, nil, &out)
}

func (c *Client) Log(ctx context.Context, space string, limit int) ([]replica.Entry, error) {
	var out []replica.Entry
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return out, c.do(ctx, "GET", sp(space)+"/log", q, nil, &out)
}

func (c *Client) Conflicts(ctx context.Context, space string) ([]replica.ConflictView, error) {
	var out []replica.ConflictView
	return out, c.do(ctx, "GET", sp(space)+"/conflicts", nil, nil, &out)
}

func (c *Client) Rollbacks(ctx context.Context, space string) ([]replica.Rollback, error) {
	var out []replica.Rollback
	return out, c.do(ctx, "GET", sp(space)+"/rollbacks", nil, nil, &out)
}

func (c *Client) Violations(ctx context.Context, space string) ([]replica.Violation, error) {
	var out []replica.Violation
	return out, c.do(ctx, "GET", sp(space)+"/violations", nil, nil, &out)
}

func (c *Client) Effects(ctx context.Context, space string, from uint64, limit int) ([]eventstream.Effect, error) {
	var out []eventstream.Effect
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "limit": {strconv.Itoa(limit)}}
	return out, c.do(ctx, "GET", sp(space)+"/effects", q, nil, &out)
}

func (c *Client) UpgradeSchema(ctx context.Context, space, schema string) (service.Written, error) {
	var out service.Written
	return out, c.do(ctx, "POST", sp(space)+"/schema", nil, map[string]string{"schema": schema}, &out)
}

func (c *Client) Export(ctx context.Context, space string, since []string, w io.Writer) (service.Exported, error) {
	var out service.Exported
	q := url.Values{}
	if len(since) > 0 {
		q.Set("since", strings.Join(since, ","))
	}
	resp, err := c.send(ctx, "GET", sp(space)+"/export", q, nil, "")
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return out, fmt.Errorf("export: %w", err)
	}
	if msg := resp.Trailer.Get("X-Tributary-Error"); msg != "" {
		return out, errors.New(msg)
	}
	n, err := strconv.Atoi(resp.Trailer.Get("X-Tributary-Changes"))
	if err != nil {
		return out, fmt.Errorf("export: the node did not finish the bundle")
	}
	out.Changes = n
	for _, h := range strings.FieldsFunc(resp.Trailer.Get("X-Tributary-Heads"), func(r rune) bool { return r == ',' }) {
		id, err := core.ParseID(h)
		if err != nil {
			return out, err
		}
		out.Heads = append(out.Heads, id)
	}
	return out, nil
}

func (c *Client) Members(ctx context.Context, space string) ([]core.Member, error) {
	var out []core.Member
	return out, c.do(ctx, "GET", sp(space)+"/members", nil, nil, &out)
}

func (c *Client) Grant(ctx context.Context, space, key, role string) (service.Written, error) {
	var out service.Written
	return out, c.do(ctx, "POST", sp(space)+"/members", nil, map[string]string{"key": key, "role": role}, &out)
}

func (c *Client) Revoke(ctx context.Context, space, key string) (service.Written, error) {
	var out service.Written
	return out, c.do(ctx, "DELETE", sp(space)+"/members/"+url.PathEscape(key), nil, nil, &out)
}

func (c *Client) Invite(ctx context.Context, space string, req service.InviteRequest) (service.Invitation, error) {
	var out service.Invitation
	return out, c.do(ctx, "POST", sp(space)+"/invites", nil, inviteRequest{TTL: req.TTL.String(), Addrs: req.Addrs, Role: req.Role}, &out)
}

func (c *Client) Invites(ctx context.Context, space string) ([]core.Invite, error) {
	var out []core.Invite
	return out, c.do(ctx, "GET", sp(space)+"/invites", nil, nil, &out)
}

func (c *Client) RevokeInvite(ctx context.Context, space, invite string) (service.Written, error) {
	var out service.Written
	return out, c.do(ctx, "DELETE", sp(space)+"/invites/"+url.PathEscape(invite), nil, nil, &out)
}

func (c *Client) SettleInvite(ctx context.Context, space, invite, member string) (service.Written, error) {
	var out service.Written
	return out, c.do(ctx, "POST", sp(space)+"/invites/"+url.PathEscape(invite)+"/settle", nil, map[string]string{"member": member}, &out)
}

func (c *Client) Sinks(ctx context.Context) ([]service.SinkStatus, error) {
	var out []service.SinkStatus
	return out, c.do(ctx, "GET", "/v1/sinks", nil, nil, &out)
}

func (c *Client) ResetSink(ctx context.Context, name string) error {
	return c.do(ctx, "POST", "/v1/sinks/"+url.PathEscape(name)+"/reset", nil, map[string]string{}, nil)
}

func (c *Client) ParkedEffects(ctx context.Context, name string) ([]checkpoint.Parked, error) {
	var out []checkpoint.Parked
	return out, c.do(ctx, "GET", "/v1/sinks/"+url.PathEscape(name)+"/parked", nil, nil, &out)
}

func (c *Client) RetrySink(ctx context.Context, name string) ([]checkpoint.Retried, error) {
	var out []checkpoint.Retried
	return out, c.do(ctx, "POST", "/v1/sinks/"+url.PathEscape(name)+"/retry", nil, map[string]string{}, &out)
}
