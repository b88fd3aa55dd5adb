package audit

import (
	"context"
	"fmt"
)

// SinkConfig is one entry of `audit.sinks`.
type SinkConfig struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
}

// SinkStats reports a sink's progress.
type SinkStats struct {
	Name string
}

// Shipper ships the journal to one sink from a durable cursor.
type Shipper struct {
	cfg SinkConfig
}

func newShipper(j *Journal, sc SinkConfig) (*Shipper, error) {
	return nil, fmt.Errorf("start sink %s: not implemented", sc.Name)
}

func (s *Shipper) start()                   {}
func (s *Shipper) stop(ctx context.Context) {}

// Stats returns the sink's counters.
func (s *Shipper) Stats() SinkStats { return SinkStats{Name: s.cfg.Name} }
