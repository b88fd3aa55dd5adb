package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
)

type webhookSink struct {
	cfg    audit.WebhookConfig
	node   string
	client *http.Client
}

func newWebhookSink(cfg audit.WebhookConfig, node string) (*webhookSink, error) {
	if cfg.URL == "" {
		return nil, errors.New("webhook.url is empty")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	tc, err := cfg.TLS.Build()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		tr.TLSClientConfig = tc
	}
	return &webhookSink{cfg: cfg, node: node, client: &http.Client{Timeout: cfg.Timeout, Transport: tr}}, nil
}

func (s *webhookSink) Ship(ctx context.Context, entries []audit.Entry) (int, error) {
	var body bytes.Buffer
	for _, e := range entries {
		body.Write(e.Line)
		body.WriteByte('\n')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, &body)
	if err != nil {
		return 0, fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Sqlwarden-Node", s.node)
	req.Header.Set("Sqlwarden-First-Seq", strconv.FormatUint(entries[0].Seq, 10))
	req.Header.Set("Sqlwarden-Last-Seq", strconv.FormatUint(entries[len(entries)-1].Seq, 10))
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if s.cfg.BearerTokenFile != "" {
		tok, err := os.ReadFile(s.cfg.BearerTokenFile)
		if err != nil {
			return 0, fmt.Errorf("read bearer token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post webhook: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("post webhook: status %s", resp.Status)
	}
	return len(entries), nil
}

func (s *webhookSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
