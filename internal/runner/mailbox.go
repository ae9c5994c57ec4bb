package runner

import "sync"

// mailbox is an unbounded queue a coordinator reads in its loop: senders
// (the dispatcher's grants, the Poker's checks) never block on a busy
// coordinator, and what arrives after its run stopped executing is dropped
// with the mailbox.
type mailbox[T any] struct {
	mu     sync.Mutex
	items  []T
	signal chan struct{} // has a value while items is not empty
}

func newMailbox[T any]() *mailbox[T] { return &mailbox[T]{signal: make(chan struct{}, 1)} }

func (m *mailbox[T]) put(v T) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

func (m *mailbox[T]) take() []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	items := m.items
	m.items = nil
	return items
}
