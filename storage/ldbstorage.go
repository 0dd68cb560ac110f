package storage

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	lstorage "github.com/syndtr/goleveldb/leveldb/storage"
)

// currentName is the file naming the live manifest, as goleveldb names it.
const currentName = "CURRENT"

// ldbStorage is a goleveldb storage.Storage on the files of one directory of
// an FS, so that the index goes through the same FS as the pack files and
// crash tests exercise it.
//
// It is stricter about durability than goleveldb's own file storage:
//   - the first Sync of a file made by Create also syncs the directory, so a
//     journal or table is never referenced by a durable record while its
//     name can still vanish in a crash;
//   - SetMeta syncs the manifest it is about to name before writing CURRENT
//     (goleveldb v1.0.0 writes a new manifest's first record without
//     syncing it, so a crash right after CURRENT is replaced would leave
//     CURRENT naming an empty manifest, and the DB would not open);
//   - CURRENT is replaced atomically (CURRENT.tmp, sync, rename, sync dir);
//   - Rename syncs the directory.
//
// Removals are not synced: goleveldb removes only files that no durable
// record needs, and when it opens it deletes the obsolete manifests,
// journals and tables that a crash brought back.
//
// Lock is an in-process lock only; the store holds its own file lock.
type ldbStorage struct {
	fsys   FS
	dir    string
	logger *slog.Logger

	mu     sync.Mutex
	locked bool
	closed bool
}

var _ lstorage.Storage = (*ldbStorage)(nil)

// newLevelDBStorage returns a goleveldb storage on the files in dir, which
// it creates if needed. A nil logger discards goleveldb's log.
func newLevelDBStorage(fsys FS, dir string, logger *slog.Logger) (*ldbStorage, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir = filepath.Clean(dir)
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create leveldb dir %s: %w", dir, err)
	}
	if err := fsys.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("create leveldb dir %s: %w", dir, err)
	}
	return &ldbStorage{fsys: fsys, dir: dir, logger: logger}, nil
}

// ldbLock is the Locker that Lock returns.
type ldbLock struct {
	s    *ldbStorage
	once sync.Once
}

// Unlock releases the lock; further calls do nothing.
func (l *ldbLock) Unlock() {
	l.once.Do(func() {
		l.s.mu.Lock()
		defer l.s.mu.Unlock()
		l.s.locked = false
	})
}

// Lock takes the storage's in-process lock. It fails with
// goleveldb's storage.ErrLocked while the lock is held.
func (s *ldbStorage) Lock() (lstorage.Locker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, lstorage.ErrClosed
	}
	if s.locked {
		return nil, lstorage.ErrLocked
	}
	s.locked = true
	return &ldbLock{s: s}, nil
}

// Log passes a goleveldb log line to the logger at Debug.
func (s *ldbStorage) Log(str string) {
	s.logger.Debug("leveldb log", "leveldb", str)
}

// path returns the path of a goleveldb file.
func (s *ldbStorage) path(name string) string { return filepath.Join(s.dir, name) }

// check returns the error for an invalid descriptor or a closed storage.
func (s *ldbStorage) check(fds ...lstorage.FileDesc) error {
	for _, fd := range fds {
		if !lstorage.FileDescOk(fd) {
			return lstorage.ErrInvalidFile
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return lstorage.ErrClosed
	}
	return nil
}

// SetMeta makes CURRENT name fd's manifest, atomically and durably, after
// making the manifest's content durable.
func (s *ldbStorage) SetMeta(fd lstorage.FileDesc) error {
	if err := s.check(fd); err != nil {
		return err
	}
	if fd.Type != lstorage.TypeManifest {
		return lstorage.ErrInvalidFile
	}
	name := fd.String()
	if err := s.syncFile(name); err != nil {
		return fmt.Errorf("set leveldb meta %s: %w", name, err)
	}
	if err := WriteFileAtomic(s.fsys, s.path(currentName), []byte(name+"\n"), 0o644); err != nil {
		return fmt.Errorf("set leveldb meta %s: %w", name, err)
	}
	return nil
}

// syncFile makes a file's content durable through a new handle.
func (s *ldbStorage) syncFile(name string) error {
	f, err := s.fsys.OpenFile(s.path(name), os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	serr := f.Sync()
	cerr := f.Close()
	if serr != nil {
		return serr
	}
	return cerr
}

// GetMeta returns the manifest that CURRENT names. If there is no CURRENT,
// or the manifest it names is missing, the error satisfies os.IsNotExist,
// which goleveldb requires to create a new DB (or to report missing files
// if the directory holds some). A malformed CURRENT is a
// *storage.ErrCorrupted.
func (s *ldbStorage) GetMeta() (lstorage.FileDesc, error) {
	if err := s.check(); err != nil {
		return lstorage.FileDesc{}, err
	}
	current := s.path(currentName)
	b, err := readFile(s.fsys, current)
	if isNotExist(err) {
		return lstorage.FileDesc{}, &fs.PathError{Op: "open", Path: current, Err: fs.ErrNotExist}
	}
	if err != nil {
		return lstorage.FileDesc{}, fmt.Errorf("read leveldb meta: %w", err)
	}
	name, ok := strings.CutSuffix(string(b), "\n")
	fd, fdOk := parseLevelDBName(name)
	if !ok || !fdOk || fd.Type != lstorage.TypeManifest {
		return lstorage.FileDesc{}, &lstorage.ErrCorrupted{
			Err: fmt.Errorf("malformed leveldb %s: %q", current, b),
		}
	}
	f, err := s.fsys.OpenFile(s.path(name), os.O_RDONLY, 0)
	if isNotExist(err) {
		return lstorage.FileDesc{}, &fs.PathError{Op: "open", Path: s.path(name), Err: fs.ErrNotExist}
	}
	if err != nil {
		return lstorage.FileDesc{}, fmt.Errorf("read leveldb meta: %w", err)
	}
	f.Close()
	return fd, nil
}

// List returns the goleveldb files of the given types; other names are
// ignored.
func (s *ldbStorage) List(ft lstorage.FileType) ([]lstorage.FileDesc, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	names, err := s.fsys.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list leveldb files: %w", err)
	}
	var fds []lstorage.FileDesc
	for _, name := range names {
		if fd, ok := parseLevelDBName(name); ok && fd.Type&ft != 0 {
			fds = append(fds, fd)
		}
	}
	return fds, nil
}

// Open opens a file for reading; a table is also looked for under its old
// ".sst" name. A missing file's error satisfies os.IsNotExist.
func (s *ldbStorage) Open(fd lstorage.FileDesc) (lstorage.Reader, error) {
	if err := s.check(fd); err != nil {
		return nil, err
	}
	f, err := s.fsys.OpenFile(s.path(fd.String()), os.O_RDONLY, 0)
	if isNotExist(err) && fd.Type == lstorage.TypeTable {
		f, err = s.fsys.OpenFile(s.path(oldTableName(fd)), os.O_RDONLY, 0)
	}
	if isNotExist(err) {
		return nil, &fs.PathError{Op: "open", Path: s.path(fd.String()), Err: fs.ErrNotExist}
	}
	if err != nil {
		return nil, fmt.Errorf("open leveldb %s: %w", fd, err)
	}
	return ldbReader{f}, nil
}

// Create creates or truncates a file for writing.
func (s *ldbStorage) Create(fd lstorage.FileDesc) (lstorage.Writer, error) {
	if err := s.check(fd); err != nil {
		return nil, err
	}
	f, err := s.fsys.OpenFile(s.path(fd.String()), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create leveldb %s: %w", fd, err)
	}
	return &ldbWriter{f: f, s: s, fd: fd}, nil
}

// Remove removes a file (a table also under its old ".sst" name).
func (s *ldbStorage) Remove(fd lstorage.FileDesc) error {
	if err := s.check(fd); err != nil {
		return err
	}
	err := s.fsys.Remove(s.path(fd.String()))
	if isNotExist(err) && fd.Type == lstorage.TypeTable {
		if err1 := s.fsys.Remove(s.path(oldTableName(fd))); !isNotExist(err1) {
			err = err1
		}
	}
	if err != nil {
		return fmt.Errorf("remove leveldb %s: %w", fd, err)
	}
	return nil
}

// Rename renames a file and syncs the directory.
func (s *ldbStorage) Rename(oldfd, newfd lstorage.FileDesc) error {
	if err := s.check(oldfd, newfd); err != nil {
		return err
	}
	if oldfd == newfd {
		return nil
	}
	if err := s.fsys.Rename(s.path(oldfd.String()), s.path(newfd.String())); err != nil {
		return fmt.Errorf("rename leveldb %s to %s: %w", oldfd, newfd, err)
	}
	if err := s.fsys.SyncDir(s.dir); err != nil {
		return fmt.Errorf("rename leveldb %s to %s: %w", oldfd, newfd, err)
	}
	return nil
}

// Close marks the storage closed; later calls fail with storage.ErrClosed.
// It closes no file: goleveldb closes its own. Close may be called more than
// once.
func (s *ldbStorage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// ldbReader is a file opened by Open; it offers only reading.
type ldbReader struct{ f File }

// Read reads from the file's offset.
func (r ldbReader) Read(p []byte) (int, error) { return r.f.Read(p) }

// ReadAt reads at off.
func (r ldbReader) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }

// Seek moves the file's offset.
func (r ldbReader) Seek(offset int64, whence int) (int64, error) { return r.f.Seek(offset, whence) }

// Close closes the file.
func (r ldbReader) Close() error { return r.f.Close() }

// ldbWriter is a file made by Create. Its first successful Sync also syncs
// the directory, so the file's name is durable before goleveldb relies on
// its content.
type ldbWriter struct {
	f         File
	s         *ldbStorage
	fd        lstorage.FileDesc
	dirSynced atomic.Bool
}

// Write appends p to the file.
func (w *ldbWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// Close closes the file without syncing it.
func (w *ldbWriter) Close() error { return w.f.Close() }

// Sync makes the file's content, and on the first call its name, durable.
func (w *ldbWriter) Sync() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync leveldb %s: %w", w.fd, err)
	}
	if w.dirSynced.Load() {
		return nil
	}
	if err := w.s.fsys.SyncDir(w.s.dir); err != nil {
		return fmt.Errorf("sync leveldb %s: %w", w.fd, err)
	}
	w.dirSynced.Store(true)
	return nil
}

// parseLevelDBName parses a goleveldb file name: MANIFEST-n, n.log, n.ldb,
// n.sst (an old table name) or n.tmp, with n decimal.
func parseLevelDBName(name string) (lstorage.FileDesc, bool) {
	if num, ok := strings.CutPrefix(name, "MANIFEST-"); ok {
		n, ok := parseFileNum(num)
		return lstorage.FileDesc{Type: lstorage.TypeManifest, Num: n}, ok
	}
	num, ext, ok := strings.Cut(name, ".")
	if !ok {
		return lstorage.FileDesc{}, false
	}
	var ft lstorage.FileType
	switch ext {
	case "log":
		ft = lstorage.TypeJournal
	case "ldb", "sst":
		ft = lstorage.TypeTable
	case "tmp":
		ft = lstorage.TypeTemp
	default:
		return lstorage.FileDesc{}, false
	}
	n, ok := parseFileNum(num)
	return lstorage.FileDesc{Type: ft, Num: n}, ok
}

// parseFileNum parses a non-negative decimal file number.
func parseFileNum(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// oldTableName is the name goleveldb once gave a table.
func oldTableName(fd lstorage.FileDesc) string { return fmt.Sprintf("%06d.sst", fd.Num) }
