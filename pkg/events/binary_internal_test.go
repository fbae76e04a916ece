package events

import (
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestConsumeBytesTruncated: consumeBytes reports a length past the end
// with the code protowire uses for it, and keeps the input's capacity.
func TestConsumeBytesTruncated(t *testing.T) {
	t.Parallel()
	if _, n := consumeBytes([]byte{5, 'a', 'b'}); n != errCodeTruncated || !errors.Is(protowire.ParseError(n), io.ErrUnexpectedEOF) {
		t.Fatalf("truncated field: code %d (%v), want %d (unexpected EOF)", n, protowire.ParseError(n), errCodeTruncated)
	}
	p := []byte{2, 'a', 'b', 'c', 'd'}
	b, n := consumeBytes(p)
	if string(b) != "ab" || n != 3 || cap(b) != cap(p)-1 {
		t.Fatalf("got %q, %d bytes read, capacity %d; want \"ab\", 3, %d", b, n, cap(b), cap(p)-1)
	}
}
