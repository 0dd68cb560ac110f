package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// FS is the file system the store writes to. Production uses OSFS; crash
// tests use a file system that forgets every write not yet synced. Both the
// pack files and the leveldb index go through it, so a crash test exercises
// exactly the code that runs in production.
//
// Names are slash-separated paths; the store only uses flat directories.
type FS interface {
	// OpenFile opens or creates a file, as os.OpenFile does.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Remove deletes a file.
	Remove(name string) error
	// Rename renames a file, replacing the target if it exists.
	Rename(oldName, newName string) error
	// ReadDir lists the names in a directory, sorted.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string, perm fs.FileMode) error
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable.
	SyncDir(dir string) error
}

// File is an open file of an FS.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Seeker
	io.Closer
	// Sync makes the file's content durable.
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Size returns the file's current size.
	Size() (int64, error)
}

// holePuncher is a File that can free a byte range in place
// (fallocate(FALLOC_FL_PUNCH_HOLE) on Linux): the range reads as zeros and
// its whole blocks stop taking disk space, without changing the file's
// size. Durable after Sync.
type holePuncher interface {
	PunchHole(off, length int64) error
}

// allocatedSizer is a File that can tell how much disk it takes, which is
// less than its size once holes are punched.
type allocatedSizer interface {
	Allocated() (int64, error)
}

// errPunchUnsupported: the file system cannot punch holes.
var errPunchUnsupported = errors.New("storage: file system cannot punch holes")

// punchHole frees [off, off+length) of f, rounded inward to whole 4 KiB
// blocks so that no byte outside the range is touched.
func punchHole(f File, off, length int64) error {
	hp, ok := f.(holePuncher)
	if !ok {
		return errPunchUnsupported
	}
	const block = 4096
	start, end := (off+block-1)/block*block, (off+length)/block*block
	if end <= start {
		return nil
	}
	return hp.PunchHole(start, end-start)
}

// allocated is the disk space f takes, or its size where that is unknown.
func allocated(f File) (int64, error) {
	if a, ok := f.(allocatedSizer); ok {
		return a.Allocated()
	}
	return f.Size()
}

// OSFS is the operating system's file system.
type OSFS struct{}

type osFile struct{ *os.File }

// PunchHole implements holePuncher with fallocate.
func (f osFile) PunchHole(off, length int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return errPunchUnsupported
	}
	if err != nil {
		return fmt.Errorf("punch hole in %s: %w", f.Name(), err)
	}
	return nil
}

// Allocated implements allocatedSizer from the file's block count.
func (f osFile) Allocated() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return st.Blocks * 512, nil
}

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// OpenFile implements FS.
func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OSFS) Rename(oldName, newName string) error { return os.Rename(oldName, newName) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("sync dir %s: %w", dir, serr)
	}
	return cerr
}

// WriteFileAtomic writes data to name through a temporary file, syncs it,
// renames it into place and syncs the directory, so that after a crash name
// holds either its old or its new content, never a mix.
func WriteFileAtomic(fsys FS, name string, data []byte, perm fs.FileMode) error {
	tmp := name + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return err
	}
	return fsys.SyncDir(filepath.Dir(name))
}

// readFile reads a whole file.
func readFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// isNotExist reports whether err says a file does not exist.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
