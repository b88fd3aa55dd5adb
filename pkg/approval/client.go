package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client talks to a daemon's approval admin API (the CLI uses it).
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:9309
	Token   string
	HTTP    *http.Client // default http.DefaultClient
}

// List returns the pending approvals.
func (c *Client) List(ctx context.Context) ([]Pending, error) {
	out, err := c.ListAll(ctx)
	return out.Approvals, err
}

// ListAll returns the pending approvals and the recently ended ones.
func (c *Client) ListAll(ctx context.Context) (PendingList, error) {
	var out PendingList
	if err := c.do(ctx, http.MethodGet, "/api/v1/approvals", nil, &out); err != nil {
		return PendingList{}, fmt.Errorf("list approvals: %w", err)
	}
	return out, nil
}

// Decide approves or denies the pending approval id.
func (c *Client) Decide(ctx context.Context, id string, approve bool, d DecisionRequest) (Result, error) {
	verb := "deny"
	if approve {
		verb = "approve"
	}
	var out Result
	if err := c.do(ctx, http.MethodPost, "/api/v1/approvals/"+url.PathEscape(id)+"/"+verb, d, &out); err != nil {
		return Result{}, fmt.Errorf("%s approval %s: %w", verb, id, err)
	}
	return out, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	return json.Unmarshal(data, out)
}
