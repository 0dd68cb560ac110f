package unixfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ExtractOptions control Extract.
type ExtractOptions struct {
	// Workers is how many blocks each file fetches ahead (0: GOMAXPROCS).
	Workers int
	// Progress, if not nil, is called with the number of bytes written.
	Progress func(n int)
	// MaxEntries and MaxBytes, when not zero, bound what Extract may
	// write: it measures the DAG first and refuses one that would write
	// more files, directories and links, or more file bytes. Content
	// addressing lets a few blocks name the same subtree many times, so a
	// small DAG can unfold into an enormous tree.
	MaxEntries int
	MaxBytes   uint64
	// Measured, if not nil, is told what the DAG will write (entries and
	// file bytes) once it has been measured, before anything is written.
	Measured func(entries int, size uint64)
}

// ErrTooBig is returned when a DAG would unfold into more than allowed.
var ErrTooBig = errors.New("unixfs: DAG unfolds into more than allowed")

// Measure walks the directories under n (not the files' contents) and
// returns how many entries and file bytes extracting it would write. It
// stops with ErrTooBig as soon as either passes its limit (0: no limit).
func Measure(ctx context.Context, g Getter, n *Node, maxEntries int, maxBytes uint64) (entries int, size uint64, err error) {
	var visit func(n *Node) error
	visit = func(n *Node) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries++
		if maxEntries > 0 && entries > maxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrTooBig, maxEntries)
		}
		if n.Kind != KindDirectory {
			size += n.Size
			if size < n.Size || maxBytes > 0 && size > maxBytes {
				return fmt.Errorf("%w: more than %d bytes", ErrTooBig, maxBytes)
			}
			return nil
		}
		links, err := ReadDir(ctx, g, n)
		if err != nil {
			return err
		}
		for _, l := range links {
			child, err := Load(ctx, g, l.Cid)
			if err != nil {
				return err
			}
			if err := visit(child); err != nil {
				return err
			}
		}
		return nil
	}
	err = visit(n)
	return entries, size, err
}

// Extract writes the file, directory or symlink n to dst, which must not
// exist yet. Every block is checked on the way (see FileReader); entry names
// that could escape dst are refused. A failed extract leaves what it wrote
// so far, so the caller can see where it stopped.
func Extract(ctx context.Context, g Getter, n *Node, dst string, opts ExtractOptions) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s: %w", dst, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if opts.MaxEntries > 0 || opts.MaxBytes > 0 || opts.Measured != nil {
		entries, size, err := Measure(ctx, g, n, opts.MaxEntries, opts.MaxBytes)
		if err != nil {
			return fmt.Errorf("extract %s: %w", n.Cid, err)
		}
		if opts.Measured != nil {
			opts.Measured(entries, size)
		}
	}
	return extract(ctx, g, n, dst, opts)
}

func extract(ctx context.Context, g Getter, n *Node, dst string, opts ExtractOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch n.Kind {
	case KindSymlink:
		return os.Symlink(n.Target, dst)
	case KindFile:
		return extractFile(ctx, g, n, dst, opts)
	}
	entries, err := ReadDir(ctx, g, n)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		child, err := Load(ctx, g, e.Cid)
		if err != nil {
			return err
		}
		if err := extract(ctx, g, child, filepath.Join(dst, e.Name), opts); err != nil {
			return err
		}
	}
	return nil
}

func extractFile(ctx context.Context, g Getter, n *Node, dst string, opts ExtractOptions) error {
	fr, err := NewFileReader(ctx, g, n, opts.Workers)
	if err != nil {
		return err
	}
	defer fr.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	var w io.Writer = f
	if opts.Progress != nil {
		w = progressWriter{f, opts.Progress}
	}
	if _, err := fr.WriteTo(w); err != nil {
		f.Close()
		return fmt.Errorf("extract %s to %s: %w", n.Cid, dst, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", dst, err)
	}
	return f.Close()
}

type progressWriter struct {
	w  io.Writer
	fn func(int)
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.fn(n)
	return n, err
}
