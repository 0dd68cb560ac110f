// Package crashfs is an in-memory file system with strict POSIX durability,
// for crash tests: a crash forgets every write, creation, rename and removal
// that was not made durable with Sync or SyncDir.
//
// Its FS and File have the methods of the storage package's FS and File
// interfaces, except that FS.OpenFile returns *File; crashfs does not import
// storage, so storage's own tests can use it through a small adapter.
//
// Durability model. Each inode (the content that a file's names and handles
// share) has its current content and its durable content; File.Sync copies
// the first into the second. Each directory has its current entries (name to
// inode) and its durable entries; FS.SyncDir copies the first into the
// second. Crash makes every directory's entries its durable entries and every
// inode's content its durable content, and kills every open handle. As a
// simplification, directories themselves (made by MkdirAll, or removed when
// empty) are durable at once, and each directory is made durable on its own,
// so a rename between two directories can be half durable.
//
// The model is strict about what must be synced but not adversarial about
// what may leak to disk unsynced: a crash never keeps an unsynced
// truncation or overwrite (CrashTorn only keeps part of an unsynced
// append), and never some of a directory's unsynced entries without the
// others. A real file system may do both.
//
// Fault injection. Before every mutating operation (see OpKind) the hook set
// with SetHook is called; if it returns an error, the operation fails with no
// effect. Ops counts the mutating operations attempted so far, so a test can
// run a workload once to count them and then fail or crash at each one:
//
//	fsys := crashfs.New()
//	fsys.SetHook(crashfs.FailFrom(k, errCrash))
//	runWorkload(fsys) // every operation from the k-th on fails
//	fsys.Crash()
//	fsys.SetHook(nil)
//	checkRecovery(fsys)
//
// Failing operations makes the program under test run its error paths. To
// test only what survives a power loss, PowerOffAt(k) captures the state at
// the k-th operation instead: the program runs on unaware, every operation
// succeeding, and the next Crash reboots into the captured state.
//
// An FS is safe for concurrent use.
package crashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// ErrCrashed is wrapped in the error of every method of a File that was
// opened before a crash.
var ErrCrashed = errors.New("crashfs: file handle lost in a crash")

// OpKind is the kind of a mutating operation.
type OpKind int

// The kinds of mutating operations.
const (
	// OpCreate is an OpenFile that creates or truncates a file.
	OpCreate OpKind = iota + 1
	// OpWrite is a File.Write.
	OpWrite
	// OpSync is a File.Sync.
	OpSync
	// OpTruncate is a File.Truncate.
	OpTruncate
	// OpRemove is an FS.Remove.
	OpRemove
	// OpRename is an FS.Rename.
	OpRename
	// OpSyncDir is an FS.SyncDir.
	OpSyncDir
	// OpPunch is a File.PunchHole.
	OpPunch
)

// String returns the kind's name, such as "write".
func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpWrite:
		return "write"
	case OpSync:
		return "sync"
	case OpTruncate:
		return "truncate"
	case OpRemove:
		return "remove"
	case OpRename:
		return "rename"
	case OpSyncDir:
		return "syncdir"
	case OpPunch:
		return "punch"
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Op is a mutating operation, as the hook sees it.
type Op struct {
	// Kind is what the operation does.
	Kind OpKind
	// Name is the cleaned path the operation acts on: the file's name when
	// its handle was opened, the old name of a rename, or the directory of
	// a SyncDir.
	Name string
	// Index is the operation's 0-based position among all the mutating
	// operations attempted on the FS, the count that Ops reports.
	Index int
}

// String describes the operation, as "#12 write 000001.log".
func (op Op) String() string { return fmt.Sprintf("#%d %v %s", op.Index, op.Kind, op.Name) }

// FailFrom returns a hook that fails every operation whose Index is n or
// more with err, as a disk that dies (or fills up) at the n-th operation.
func FailFrom(n int, err error) func(Op) error {
	return func(op Op) error {
		if op.Index >= n {
			return err
		}
		return nil
	}
}

// FS is an in-memory file system that forgets on Crash everything not made
// durable. The zero value is not usable; call New.
type FS struct {
	mu   sync.Mutex
	dirs map[string]*dir // by cleaned path
	hook func(Op) error
	ops  int
	boot int // incremented by every crash; handles from an older boot are dead

	powerOffAt int             // index of the op before which power fails; -1 for never
	frozen     map[string]*dir // the state when the power failed, or nil
}

type dir struct {
	files   map[string]*inode // current entries, by base name
	durable map[string]*inode // entries as of the last SyncDir
}

type inode struct {
	data    []byte // current content
	durable []byte // content as of the last Sync; never aliases data
	// holes and durableHoles are the BlockSize-blocks punched out of data
	// and out of durable: they read as zeros and take no space.
	holes, durableHoles map[int64]bool
}

// BlockSize is the allocation unit PunchHole frees and Allocated counts.
const BlockSize = 4096

// fill marks the blocks of [off, end) as allocated again after a write.
func (n *inode) fill(off, end int64) {
	for b := off / BlockSize; b*BlockSize < end; b++ {
		delete(n.holes, b)
	}
}

// New returns an empty FS whose root directories "." and "/" exist.
func New() *FS {
	return &FS{
		dirs:       map[string]*dir{".": newDir(), "/": newDir()},
		powerOffAt: -1,
	}
}

func newDir() *dir {
	return &dir{files: map[string]*inode{}, durable: map[string]*inode{}}
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// SetHook sets the function called before every mutating operation, or
// removes it when h is nil. A non-nil error from h fails the operation with
// no effect, wrapped in an *fs.PathError. h runs with the FS locked and must
// not call the FS or its files. The hook survives a crash.
func (f *FS) SetHook(h func(Op) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

// Ops returns the number of mutating operations attempted so far, including
// those the hook failed. An operation that fails its own checks (a missing
// file, a closed handle) is neither counted nor shown to the hook.
func (f *FS) Ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// attempt counts a mutating operation and asks the hook whether it may run.
// The caller holds f.mu.
func (f *FS) attempt(kind OpKind, op, name string) error {
	idx := f.ops
	f.ops++
	if idx == f.powerOffAt {
		f.frozen = f.snapshot()
	}
	if f.hook == nil {
		return nil
	}
	if err := f.hook(Op{Kind: kind, Name: name, Index: idx}); err != nil {
		return pathErr(op, name, err)
	}
	return nil
}

// parent returns the directory holding the cleaned name and name's base. The
// caller holds f.mu.
func (f *FS) parent(op, name string) (*dir, string, error) {
	d, ok := f.dirs[filepath.Dir(name)]
	if !ok {
		return nil, "", pathErr(op, name, fs.ErrNotExist)
	}
	return d, filepath.Base(name), nil
}

// OpenFile opens or creates a file as os.OpenFile does, honouring the access
// mode (os.O_RDONLY, os.O_WRONLY, os.O_RDWR) and os.O_CREATE, os.O_EXCL,
// os.O_TRUNC and os.O_APPEND. perm is ignored. The file's directory must
// exist. A created file's name is not durable until its directory is synced.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	name = filepath.Clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.dirs[name]; ok {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	d, base, err := f.parent("open", name)
	if err != nil {
		return nil, err
	}
	ino, exists := d.files[base]
	switch {
	case exists && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, fs.ErrExist)
	case !exists && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, fs.ErrNotExist)
	}
	h := &File{fs: f, name: name, boot: f.boot, append: flag&os.O_APPEND != 0}
	switch flag & (os.O_WRONLY | os.O_RDWR) {
	case os.O_WRONLY:
		h.write = true
	case os.O_RDWR:
		h.read, h.write = true, true
	default:
		h.read = true
	}
	truncate := exists && h.write && flag&os.O_TRUNC != 0
	if !exists || truncate {
		if err := f.attempt(OpCreate, "open", name); err != nil {
			return nil, err
		}
	}
	switch {
	case !exists:
		ino = &inode{}
		d.files[base] = ino
	case truncate:
		ino.data = nil
	}
	h.ino = ino
	return h, nil
}

// Remove removes a file, or an empty directory. Open handles keep working on
// the removed file's content. A file's removal is not durable until its
// directory is synced; a directory's is durable at once.
func (f *FS) Remove(name string) error {
	name = filepath.Clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.dirs[name]; ok {
		if filepath.Dir(name) == name {
			return pathErr("remove", name, syscall.EBUSY)
		}
		if len(f.children(name)) > 0 {
			return pathErr("remove", name, syscall.ENOTEMPTY)
		}
		if err := f.attempt(OpRemove, "remove", name); err != nil {
			return err
		}
		delete(f.dirs, name)
		return nil
	}
	d, base, err := f.parent("remove", name)
	if err != nil {
		return err
	}
	if _, ok := d.files[base]; !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	if err := f.attempt(OpRemove, "remove", name); err != nil {
		return err
	}
	delete(d.files, base)
	return nil
}

// Rename renames a file, replacing newName if it is a file. Open handles of
// both keep working on their content. Renaming a directory is not supported.
// The rename is not durable until the directories involved are synced.
func (f *FS) Rename(oldName, newName string) error {
	oldName, newName = filepath.Clean(oldName), filepath.Clean(newName)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.dirs[oldName]; ok {
		return pathErr("rename", oldName, errors.ErrUnsupported)
	}
	od, ob, err := f.parent("rename", oldName)
	if err != nil {
		return err
	}
	ino, ok := od.files[ob]
	if !ok {
		return pathErr("rename", oldName, fs.ErrNotExist)
	}
	if _, ok := f.dirs[newName]; ok {
		return pathErr("rename", newName, syscall.EISDIR)
	}
	nd, nb, err := f.parent("rename", newName)
	if err != nil {
		return err
	}
	if err := f.attempt(OpRename, "rename", oldName); err != nil {
		return err
	}
	delete(od.files, ob)
	nd.files[nb] = ino
	return nil
}

// children returns the base names in the directory, files and
// subdirectories, unsorted. The caller holds f.mu.
func (f *FS) children(name string) []string {
	var names []string
	for base := range f.dirs[name].files {
		names = append(names, base)
	}
	for p := range f.dirs {
		if p != name && filepath.Dir(p) == name {
			names = append(names, filepath.Base(p))
		}
	}
	return names
}

// ReadDir returns the sorted names of the files and directories in a
// directory, which must exist.
func (f *FS) ReadDir(name string) ([]string, error) {
	name = filepath.Clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.dirs[name]; !ok {
		return nil, pathErr("open", name, fs.ErrNotExist)
	}
	names := f.children(name)
	slices.Sort(names)
	return names, nil
}

// MkdirAll creates a directory and any missing parents. perm is ignored. New
// directories are durable at once: this is a simplification, a real file
// system needs their parents synced.
func (f *FS) MkdirAll(name string, perm fs.FileMode) error {
	name = filepath.Clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	var missing []string
	for p := name; ; p = filepath.Dir(p) {
		if _, ok := f.dirs[p]; ok {
			break
		}
		missing = append(missing, p)
	}
	for _, p := range slices.Backward(missing) {
		d, base, err := f.parent("mkdir", p)
		if err != nil {
			return err
		}
		if _, ok := d.files[base]; ok {
			return pathErr("mkdir", p, syscall.ENOTDIR)
		}
		f.dirs[p] = newDir()
	}
	return nil
}

// SyncDir makes the directory's current entries durable.
func (f *FS) SyncDir(name string) error {
	name = filepath.Clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.dirs[name]
	if !ok {
		return pathErr("open", name, fs.ErrNotExist)
	}
	if err := f.attempt(OpSyncDir, "sync", name); err != nil {
		return err
	}
	d.durable = maps.Clone(d.files)
	return nil
}

// PowerOffAt makes the power fail just before the n-th mutating operation
// (0-based, as Op.Index), or now if n operations have already been
// attempted. The FS captures its state then; the program keeps running on
// the FS, which it cannot tell, and the next Crash or CrashTorn reboots into
// the captured state, forgetting everything done after the power failed
// (directories made by MkdirAll included). Unlike a failing hook, this runs
// no error path of the program. Crash clears the setting.
func (f *FS) PowerOffAt(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = nil
	f.powerOffAt = -1
	if n <= f.ops {
		f.frozen = f.snapshot()
		return
	}
	f.powerOffAt = n
}

// snapshot returns a deep copy of the directories and their inodes, sharing
// an inode between directories where they do. The caller holds f.mu.
func (f *FS) snapshot() map[string]*dir {
	inodes := map[*inode]*inode{}
	copyInode := func(ino *inode) *inode {
		c, ok := inodes[ino]
		if !ok {
			c = &inode{data: bytes.Clone(ino.data), durable: bytes.Clone(ino.durable),
				holes: maps.Clone(ino.holes), durableHoles: maps.Clone(ino.durableHoles)}
			inodes[ino] = c
		}
		return c
	}
	copyEntries := func(m map[string]*inode) map[string]*inode {
		c := make(map[string]*inode, len(m))
		for name, ino := range m {
			c[name] = copyInode(ino)
		}
		return c
	}
	dirs := make(map[string]*dir, len(f.dirs))
	for p, d := range f.dirs {
		dirs[p] = &dir{files: copyEntries(d.files), durable: copyEntries(d.durable)}
	}
	return dirs
}

// Crash simulates a power loss and reboot: every directory gets back its
// durable entries, every file its durable content, and every open handle
// dies (its methods return errors wrapping ErrCrashed). After PowerOffAt,
// the state rebooted into is the one captured when the power failed. The FS
// stays usable for new opens. The hook and the operation count are kept.
func (f *FS) Crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reboot(func(*inode) {})
}

// CrashTorn is Crash where writes past the last Sync reached the disk
// partly: for every file whose current content (when the power failed, after
// PowerOffAt) extends its durable content by extra bytes, the first
// keep(extra) of them survive (clamped to [0, extra]). Any other file gets back its durable content. keep is called
// in a fixed order (directories and names sorted), so a seeded keep gives a
// repeatable crash; it runs with the FS locked and must not call the FS.
func (f *FS) CrashTorn(keep func(extra int) int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reboot(func(ino *inode) {
		extra := len(ino.data) - len(ino.durable)
		if extra <= 0 || !bytes.HasPrefix(ino.data, ino.durable) {
			return
		}
		n := min(max(keep(extra), 0), extra)
		ino.durable = bytes.Clone(ino.data[:len(ino.durable)+n])
	})
}

// reboot restores every directory's durable entries, lets tear adjust the
// durable content of each surviving inode, then restores that content and
// kills every open handle. The caller holds f.mu.
func (f *FS) reboot(tear func(*inode)) {
	if f.frozen != nil {
		f.dirs = f.frozen
	}
	f.frozen = nil
	f.powerOffAt = -1
	seen := map[*inode]bool{}
	for _, p := range slices.Sorted(maps.Keys(f.dirs)) {
		d := f.dirs[p]
		d.files = maps.Clone(d.durable)
		for _, base := range slices.Sorted(maps.Keys(d.files)) {
			ino := d.files[base]
			if seen[ino] {
				continue
			}
			seen[ino] = true
			tear(ino)
			ino.data = bytes.Clone(ino.durable)
			ino.holes = maps.Clone(ino.durableHoles)
		}
	}
	f.boot++
}

// File is an open file of an FS. Its methods have the semantics of
// os.File's; several handles may share one file.
type File struct {
	fs     *FS
	name   string
	ino    *inode
	boot   int
	read   bool
	write  bool
	append bool
	off    int64
	closed bool
}

// usable returns an error if the handle died in a crash or was closed. The
// caller holds h.fs.mu.
func (h *File) usable(op string) error {
	if h.boot != h.fs.boot {
		return pathErr(op, h.name, ErrCrashed)
	}
	if h.closed {
		return pathErr(op, h.name, fs.ErrClosed)
	}
	return nil
}

// readable is usable for a read.
func (h *File) readable(op string) error {
	if err := h.usable(op); err != nil {
		return err
	}
	if !h.read {
		return pathErr(op, h.name, fs.ErrPermission)
	}
	return nil
}

// writable is usable for a write.
func (h *File) writable(op string) error {
	if err := h.usable(op); err != nil {
		return err
	}
	if !h.write {
		return pathErr(op, h.name, fs.ErrPermission)
	}
	return nil
}

// Read reads from the handle's offset, returning io.EOF at the end.
func (h *File) Read(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.readable("read"); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if h.off >= int64(len(h.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.ino.data[h.off:])
	h.off += int64(n)
	return n, nil
}

// ReadAt reads at off without moving the offset; it returns io.EOF if it
// reads fewer than len(p) bytes.
func (h *File) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.readable("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("readat", h.name, errors.New("negative offset"))
	}
	var n int
	if off < int64(len(h.ino.data)) {
		n = copy(p, h.ino.data[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Write writes p at the handle's offset, or at the end for os.O_APPEND,
// growing the file as needed. The data is copied, and not durable until Sync.
func (h *File) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.writable("write"); err != nil {
		return 0, err
	}
	if err := h.fs.attempt(OpWrite, "write", h.name); err != nil {
		return 0, err
	}
	if h.append {
		h.off = int64(len(h.ino.data))
	}
	end := h.off + int64(len(p))
	if end > int64(len(h.ino.data)) {
		h.ino.resize(end)
	}
	copy(h.ino.data[h.off:], p)
	h.ino.fill(h.off, end)
	h.off = end
	return len(p), nil
}

// PunchHole frees the whole BlockSize-blocks inside [off, off+length): they
// read as zeros and stop counting in Allocated; the file's size does not
// change. Like fallocate(FALLOC_FL_PUNCH_HOLE), it is durable after Sync.
func (h *File) PunchHole(off, length int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.writable("punch"); err != nil {
		return err
	}
	if off < 0 || length < 0 {
		return pathErr("punch", h.name, syscall.EINVAL)
	}
	if err := h.fs.attempt(OpPunch, "punch", h.name); err != nil {
		return err
	}
	first := (off + BlockSize - 1) / BlockSize
	last := min(off+length, int64(len(h.ino.data))) / BlockSize // exclusive
	for b := first; b < last; b++ {
		clear(h.ino.data[b*BlockSize : (b+1)*BlockSize])
		if h.ino.holes == nil {
			h.ino.holes = map[int64]bool{}
		}
		h.ino.holes[b] = true
	}
	return nil
}

// Allocated returns the bytes the file takes: its size rounded up to
// BlockSize, less the punched blocks.
func (h *File) Allocated() (int64, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.usable("stat"); err != nil {
		return 0, err
	}
	blocks := (int64(len(h.ino.data)) + BlockSize - 1) / BlockSize
	for b := range h.ino.holes {
		if b < blocks {
			blocks--
		}
	}
	return blocks * BlockSize, nil
}

// Seek sets the offset for the next Read or Write, as os.File.Seek does.
func (h *File) Seek(offset int64, whence int) (int64, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.usable("seek"); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += h.off
	case io.SeekEnd:
		offset += int64(len(h.ino.data))
	default:
		return 0, pathErr("seek", h.name, syscall.EINVAL)
	}
	if offset < 0 {
		return 0, pathErr("seek", h.name, syscall.EINVAL)
	}
	h.off = offset
	return offset, nil
}

// Sync makes the file's current content durable, whichever handle wrote it.
// It does not make the file's name durable: that takes SyncDir.
func (h *File) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.usable("sync"); err != nil {
		return err
	}
	if err := h.fs.attempt(OpSync, "sync", h.name); err != nil {
		return err
	}
	h.ino.durable = bytes.Clone(h.ino.data)
	h.ino.durableHoles = maps.Clone(h.ino.holes)
	return nil
}

// Truncate changes the file's size, zero-filling when it grows. The handle
// must be open for writing.
func (h *File) Truncate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.writable("truncate"); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", h.name, syscall.EINVAL)
	}
	if err := h.fs.attempt(OpTruncate, "truncate", h.name); err != nil {
		return err
	}
	h.ino.resize(size)
	for b := range h.ino.holes {
		if b*BlockSize >= size {
			delete(h.ino.holes, b)
		}
	}
	return nil
}

// Size returns the file's current size.
func (h *File) Size() (int64, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.usable("stat"); err != nil {
		return 0, err
	}
	return int64(len(h.ino.data)), nil
}

// Close closes the handle. Closing does not sync.
func (h *File) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.usable("close"); err != nil {
		return err
	}
	h.closed = true
	return nil
}

// resize sets the content's length, zero-filling when it grows.
func (n *inode) resize(size int64) {
	d := n.data
	switch {
	case size <= int64(len(d)):
		n.data = d[:size]
	case size <= int64(cap(d)):
		old := len(d)
		d = d[:size]
		clear(d[old:])
		n.data = d
	default:
		nd := make([]byte, size, max(size, 2*int64(cap(d))))
		copy(nd, d)
		n.data = nd
	}
}
