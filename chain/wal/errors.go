package wal

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every *CorruptError: the log is damaged where
// a crash cannot explain it, and the node must not start on it.
var ErrCorrupt = errors.New("wal: corrupt")

// ErrClosed is returned by every call on a closed WAL.
var ErrClosed = errors.New("wal: closed")

// ErrBadRecord is wrapped by EncodeRecord and DecodeRecord for a record
// that is malformed, too large or not canonical.
var ErrBadRecord = errors.New("wal: bad record")

// CorruptError says where a log is damaged and how.
type CorruptError struct {
	// Segment is the path of the damaged segment file.
	Segment string
	// Offset is the byte offset of the damage in that file.
	Offset int64
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: corrupt segment %s at offset %d: %s", e.Segment, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
