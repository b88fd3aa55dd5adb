package approval

import (
	"context"
	"errors"
	"sync"
)

// Store errors. A Store wraps its own failures in ErrStoreUnavailable so the
// broker can fail closed with one clear answer.
var (
	// ErrKeyExists is returned by Create when the key already has a value.
	ErrKeyExists = errors.New("key exists")
	// ErrRevision is returned by Update and Delete when the key changed
	// since the revision the caller read (compare-and-set lost).
	ErrRevision = errors.New("revision changed")
	// ErrKeyNotFound is returned by Get for a key without a value.
	ErrKeyNotFound = errors.New("key not found")
	// ErrStoreUnavailable means the store cannot be reached.
	ErrStoreUnavailable = errors.New("approval store unavailable")
)

// StoreEntry is one key's value at a revision. Deleted marks a removal seen
// by a watch.
type StoreEntry struct {
	Key      string
	Value    []byte
	Revision uint64
	Deleted  bool
}

// Store keeps the approval broker's state: a key-value map whose every write
// gets a new, increasing revision, with compare-and-set writes and a watch.
// The in-memory store serves one daemon; the NATS JetStream store shares
// approvals between every daemon of a fleet.
type Store interface {
	// Create sets key only if it has no value.
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update sets key only if its current revision is rev.
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Get returns key's current value.
	Get(ctx context.Context, key string) (StoreEntry, error)
	// Delete removes key if its current revision is rev.
	Delete(ctx context.Context, key string, rev uint64) error
	// Watch calls fn with every current entry and then with every change,
	// from one goroutine, until ctx ends. It returns at once. Entries may be
	// delivered more than once (after a reconnect); the revision tells.
	Watch(ctx context.Context, fn func(StoreEntry))
	// Err reports why the store is unusable now, or nil.
	Err() error
	// Close releases the store.
	Close() error
}

// MemoryStore is a Store in this process's memory: approvals end with the
// daemon and are seen only by it.
type MemoryStore struct {
	mu       sync.Mutex
	rev      uint64
	data     map[string]StoreEntry
	watchers map[int]*memWatcher
	nextW    int
}

// memWatcher is one watch's queue: writers append and signal, never block.
type memWatcher struct {
	mu    sync.Mutex
	queue []StoreEntry
	wake  chan struct{} // capacity 1
}

func (w *memWatcher) push(e StoreEntry) {
	w.mu.Lock()
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *memWatcher) take() []StoreEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{data: map[string]StoreEntry{}, watchers: map[int]*memWatcher{}}
}

// set writes under m.mu and queues the change for the watchers.
func (m *MemoryStore) set(e StoreEntry) uint64 {
	m.rev++
	e.Revision = m.rev
	if e.Deleted {
		delete(m.data, e.Key)
	} else {
		e.Value = append([]byte(nil), e.Value...)
		m.data[e.Key] = e
	}
	for _, w := range m.watchers {
		w.push(e)
	}
	return e.Revision
}

// Create implements Store.
func (m *MemoryStore) Create(_ context.Context, key string, value []byte) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[key]; ok {
		return 0, ErrKeyExists
	}
	return m.set(StoreEntry{Key: key, Value: value}), nil
}

// Update implements Store.
func (m *MemoryStore) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.data[key]
	if !ok || cur.Revision != rev {
		return 0, ErrRevision
	}
	return m.set(StoreEntry{Key: key, Value: value}), nil
}

// Get implements Store.
func (m *MemoryStore) Get(_ context.Context, key string) (StoreEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.data[key]
	if !ok {
		return StoreEntry{}, ErrKeyNotFound
	}
	return e, nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(_ context.Context, key string, rev uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.data[key]
	if !ok || cur.Revision != rev {
		return ErrRevision
	}
	m.set(StoreEntry{Key: key, Deleted: true})
	return nil
}

// Watch implements Store.
func (m *MemoryStore) Watch(ctx context.Context, fn func(StoreEntry)) {
	w := &memWatcher{wake: make(chan struct{}, 1)}
	m.mu.Lock()
	id := m.nextW
	m.nextW++
	for _, e := range m.data {
		w.queue = append(w.queue, e)
	}
	m.watchers[id] = w
	m.mu.Unlock()
	w.wake <- struct{}{}
	go func() {
		defer func() {
			m.mu.Lock()
			delete(m.watchers, id)
			m.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				for _, e := range w.take() {
					fn(e)
				}
			}
		}
	}()
}

// Err implements Store: memory is always there.
func (m *MemoryStore) Err() error { return nil }

// Close implements Store.
func (m *MemoryStore) Close() error { return nil }
