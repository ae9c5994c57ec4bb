package logs

import (
	"bytes"
	"fmt"
)

// Buffer holds formatted log lines waiting to be sent (a remote worker's,
// while the server is unreachable or slower than the task), within a bound,
// in memory. Until it fills, it keeps everything. Once full, it keeps what
// it held then (at most half the bound: the first part) and the last lines
// written since (between a quarter and a half of the bound, in two
// segments, the older one dropped whenever the newer fills, as a bounded
// log file keeps its tail), and when the first part has been sent, a line
// of tasuki's own saying how many lines and bytes were dropped between the
// two, then the last part. So a worker cut from its server for a long time
// delivers the start and the end of what its task wrote, and says what is
// missing, as the server's per-attempt bound does.
type Buffer struct {
	// Limit bounds the bytes held (a single line longer than a quarter of
	// it keeps only its end); zero or less means DefaultBuffer.
	Limit int
	// Why says in the dropped line why lines were dropped ("tasuki worker:
	// the server did not take the log").
	Why string

	head    []byte    // to send, in order
	over    bool      // the head filled: writes go to the tail
	seg     [2][]byte // the tail: seg[1-cur] older, seg[cur] newer
	cur     int
	dropped int64 // bytes dropped from the tail
	lines   int64 // lines among them
}

// DefaultBuffer is the bound of a Buffer whose Limit is zero.
const DefaultBuffer = 16 << 20

func (b *Buffer) limit() int {
	if b.Limit <= 0 {
		return DefaultBuffer
	}
	return max(b.Limit, 4*limitReserve)
}

// Write adds lines. p should hold whole lines (a Writer's output).
func (b *Buffer) Write(p []byte) {
	if !b.over {
		room := b.limit()/2 - len(b.head)
		if len(p) <= room {
			b.head = append(b.head, p...)
			return
		}
		// The whole lines that still fit end the first part (a write
		// holds many lines when the task writes fast).
		cut := 0
		if room > 0 {
			cut = bytes.LastIndexByte(p[:room], '\n') + 1
		}
		b.head = append(b.head, p[:cut]...)
		p = p[cut:]
		b.over = true
	}
	segMax := b.limit() / 4
	if len(p) > segMax {
		// Longer than a segment: its last whole lines that fit, if any.
		cut := len(p) - segMax
		if i := bytes.IndexByte(p[cut:], '\n'); i >= 0 && cut+i+1 < len(p) {
			cut += i + 1
		}
		b.drop(p[:cut])
		p = p[cut:]
	}
	if len(b.seg[b.cur])+len(p) > segMax {
		old := 1 - b.cur
		b.drop(b.seg[old])
		b.seg[old] = b.seg[old][:0]
		b.cur = old
	}
	b.seg[b.cur] = append(b.seg[b.cur], p...)
}

func (b *Buffer) drop(p []byte) {
	b.dropped += int64(len(p))
	b.lines += int64(bytes.Count(p, []byte{'\n'}))
}

// Pending returns the bytes to send next (nil when there are none). Once
// the first part of a buffer that filled has been sent, it is the dropped
// line and the last part.
func (b *Buffer) Pending() []byte {
	if len(b.head) == 0 && b.over {
		older, newer := b.seg[1-b.cur], b.seg[b.cur]
		first := older
		if len(first) == 0 {
			first = newer
		}
		var head []byte
		if b.dropped > 0 {
			head = noteLine(first, fmt.Sprintf("%s: %d lines (%s of log, time stamps included) dropped here", b.Why, b.lines, sizeText(b.dropped)))
		}
		head = append(append(head, older...), newer...)
		*b = Buffer{Limit: b.Limit, Why: b.Why, head: head}
	}
	if len(b.head) == 0 {
		return nil
	}
	return b.head
}

// Advance drops the first n bytes of Pending: they were sent.
func (b *Buffer) Advance(n int) {
	b.head = b.head[min(n, len(b.head)):]
	if len(b.head) == 0 {
		b.head = nil
	}
}

// Len is the number of bytes held.
func (b *Buffer) Len() int { return len(b.head) + len(b.seg[0]) + len(b.seg[1]) }

// Full reports whether the buffer filled (some lines may be dropped).
func (b *Buffer) Full() bool { return b.over }
