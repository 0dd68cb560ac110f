package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// file is what the WAL does to a segment it writes. Tests wrap it to
// inject write errors, short writes, fsync errors and a full disk.
type file interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// openFunc opens a segment file for writing.
type openFunc func(path string, flag int) (file, error)

func openOS(path string, flag int) (file, error) {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// syncDir fsyncs a directory, so that the files created, renamed or
// removed in it stay so after a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// writeAll writes p, calling a short write without an error what it is.
func writeAll(f file, p []byte) error {
	n, err := f.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("%d of %d bytes written: %w", n, len(p), err)
	}
	return nil
}

// ensureDir creates dir if it is absent, fsyncing its parent so that the
// new directory stays.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}
