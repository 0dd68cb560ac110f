package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/storage"
	"auditnet/storage/car"
	"auditnet/storage/unixfs"
)

// Ref names a UnixFS node: a root CID and a path below it. It is written
// CID, CID/path or /ipfs/CID/path.
type Ref struct {
	Root cid.Cid
	Path string
}

func (r Ref) String() string {
	if r.Path == "" {
		return r.Root.String()
	}
	return r.Root.String() + "/" + r.Path
}

// ErrBadRef is wrapped by ParseRef's errors.
var ErrBadRef = errors.New("bad reference")

// ParseRef parses a reference to a UnixFS node.
func ParseRef(s string) (Ref, error) {
	rest := strings.TrimPrefix(s, "/ipfs/")
	head, path, _ := strings.Cut(rest, "/")
	c, err := cid.Decode(head)
	if err != nil {
		return Ref{}, fmt.Errorf("%w: invalid CID %q: %w", ErrBadRef, head, err)
	}
	return Ref{Root: c, Path: strings.Trim(path, "/")}, nil
}

// AddOptions control Add.
type AddOptions struct {
	// Recursive allows directories.
	Recursive bool
	// StoreSymlinks stores symbolic links as UnixFS symlinks instead of
	// refusing them.
	StoreSymlinks bool
	// SkipSpecial skips devices, sockets and named pipes.
	SkipSpecial bool
	// NoPin leaves the added DAGs unpinned (the next GC removes them).
	NoPin bool
	// Progress is told the number of file bytes each chunk adds.
	Progress func(n int)
	// Skipped is told of every special file skipped.
	Skipped func(path string)
	// Policy is the policy a daemon that runs the chain anchors the
	// added roots with, on an agency's node (default restricted).
	Policy chain.Policy
}

// Added is one file or directory an add stored.
type Added struct {
	Path string
	Cid  cid.Cid
	// Size is the content's size in bytes (a file's length, 0 for a
	// directory); DAGSize that of the whole encoded DAG, every block.
	Size    uint64
	DAGSize uint64 `json:",omitempty"`
	// Anchor is, for a root a daemon anchored on the chain, where.
	Anchor *Anchored `json:",omitempty"`
}

// AddResult lists what an add stored, in the order kubo's `ipfs add`
// prints it: every file in the order of the walk (names sorted, depth
// first), then every directory, each after its subdirectories; and the
// root of each path given.
type AddResult struct {
	Entries []Added
	Roots   []Added
}

// ErrIsDirectory is returned by Add for a directory without Recursive.
var ErrIsDirectory = errors.New("is a directory (use -r to add a directory)")

// Add imports paths into a UnixFS DAG each. With a nil repo it only
// computes the CIDs (`add --only-hash`) and writes nothing. Otherwise the
// blocks and pins are committed together, and only then is the result
// returned: a printed CID is on disk.
func Add(ctx context.Context, r *Repo, paths []string, opts AddOptions) (AddResult, error) {
	for _, p := range paths {
		info, err := os.Lstat(p)
		if err != nil {
			return AddResult{}, err
		}
		if info.IsDir() && !opts.Recursive {
			return AddResult{}, fmt.Errorf("%s %w", p, ErrIsDirectory)
		}
	}
	var sink unixfs.BlockSink
	var w *storage.Writer
	if r != nil {
		var err error
		if w, err = r.Store.NewWriter(); err != nil {
			return AddResult{}, err
		}
		defer w.Close()
		sink = w
	}
	im, err := unixfs.NewImporter(unixfs.Params{}, sink, opts.Progress)
	if err != nil {
		return AddResult{}, err
	}
	uopts := unixfs.AddOptions{SkipSpecial: opts.SkipSpecial}
	if opts.StoreSymlinks {
		uopts.Symlinks = unixfs.SymlinksStore
	}
	if opts.Skipped != nil {
		uopts.Skipped = func(path string, _ fs.FileMode) { opts.Skipped(path) }
	}
	var res AddResult
	var dirs []Added
	for _, p := range paths {
		root, err := im.AddPath(ctx, p, uopts, func(path string, e unixfs.Entry, isDir bool) {
			a := Added{Path: path, Cid: e.Cid, Size: e.Size}
			if isDir {
				dirs = append(dirs, a)
			} else {
				res.Entries = append(res.Entries, a)
			}
		})
		if err != nil {
			return AddResult{}, err
		}
		res.Roots = append(res.Roots, Added{Path: filepath.Base(filepath.Clean(p)), Cid: root.Cid, Size: root.Size, DAGSize: root.Tsize})
		if w != nil && !opts.NoPin {
			w.Pin(root.Cid)
		}
	}
	res.Entries = append(res.Entries, dirs...)
	if w != nil {
		if err := w.Commit(); err != nil {
			return AddResult{}, err
		}
	}
	return res, nil
}

// resolve finds the node a reference names, with a clear error for a
// block the repo does not hold.
func (r *Repo) resolve(ctx context.Context, ref Ref) (*unixfs.Node, error) {
	n, err := unixfs.Resolve(ctx, r.Store, ref.Root, ref.Path)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%s: not in this repo (%w)", ref, err)
	}
	return n, err
}

// Cat writes the file ref names to w, re-hashing every block on the way.
func (r *Repo) Cat(ctx context.Context, ref Ref, w io.Writer) error {
	n, err := r.resolve(ctx, ref)
	if err != nil {
		return err
	}
	fr, err := unixfs.NewFileReader(ctx, r.Store, n, 0)
	if err != nil {
		return err
	}
	defer fr.Close()
	if _, err := fr.WriteTo(w); err != nil {
		return fmt.Errorf("cat %s: %w", ref, err)
	}
	return nil
}

// DefaultMaxEntries bounds how many files and directories a get writes
// unless told otherwise.
const DefaultMaxEntries = 1 << 24

// GetOptions control Get.
type GetOptions struct {
	// Measured is told how many file bytes the get will write, before it
	// writes any; Progress, how many it wrote since the last call.
	Measured func(size uint64)
	Progress func(int)
	// MaxEntries bounds the files and directories written (0: the
	// default; negative: no bound).
	MaxEntries int
	// Access says why, for the access request of a fetch on the chain.
	Access AccessOptions
}

// Get writes the file, directory or symlink ref names to dst, which must
// not exist. It first checks that the DAG fits: no more entries than
// allowed and no more file bytes than the destination's free space.
func (r *Repo) Get(ctx context.Context, ref Ref, dst string, opts GetOptions) error {
	n, err := r.resolve(ctx, ref)
	if err != nil {
		return err
	}
	eopts := unixfs.ExtractOptions{Progress: opts.Progress, MaxEntries: opts.MaxEntries}
	if opts.Measured != nil {
		eopts.Measured = func(_ int, size uint64) { opts.Measured(size) }
	}
	switch {
	case eopts.MaxEntries == 0:
		eopts.MaxEntries = DefaultMaxEntries
	case eopts.MaxEntries < 0:
		eopts.MaxEntries = 0
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(filepath.Clean(dst)), &st); err == nil {
		eopts.MaxBytes = st.Bavail * uint64(st.Bsize)
	}
	return unixfs.Extract(ctx, r.Store, n, dst, eopts)
}

// LsEntry is one entry of a directory listing.
type LsEntry struct {
	Name string
	Cid  cid.Cid
	Kind unixfs.Kind
	Size uint64
}

// Ls lists the directory ref names (or the file itself, if it is one).
func (r *Repo) Ls(ctx context.Context, ref Ref) ([]LsEntry, error) {
	n, err := r.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	if n.Kind != unixfs.KindDirectory {
		return []LsEntry{{Name: ref.String(), Cid: n.Cid, Kind: n.Kind, Size: n.Size}}, nil
	}
	links, err := unixfs.ReadDir(ctx, r.Store, n)
	if err != nil {
		return nil, err
	}
	out := make([]LsEntry, 0, len(links))
	for _, l := range links {
		if l.Cid.Type() == cid.Raw { // a raw block is a file: no need to read it
			size, err := r.Store.Size(ctx, l.Cid)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", ref, l.Name, err)
			}
			out = append(out, LsEntry{Name: l.Name, Cid: l.Cid, Kind: unixfs.KindFile, Size: uint64(size)})
			continue
		}
		child, err := unixfs.Load(ctx, r.Store, l.Cid)
		if err != nil {
			return nil, err
		}
		out = append(out, LsEntry{Name: l.Name, Cid: l.Cid, Kind: child.Kind, Size: child.Size})
	}
	return out, nil
}

// PinAdd pins stored DAGs, checking each is complete.
func (r *Repo) PinAdd(ctx context.Context, roots []cid.Cid) error {
	return r.Store.Pin(ctx, roots...)
}

// PinRm unpins roots.
func (r *Repo) PinRm(ctx context.Context, roots []cid.Cid) error {
	for _, c := range roots {
		if err := r.Store.Unpin(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// DagExport writes ref's DAG as a CAR v1 to w.
func (r *Repo) DagExport(ctx context.Context, root cid.Cid, w io.Writer) error {
	return car.Export(ctx, w, r.Store, root)
}

// DagImport reads a CAR, stores its blocks and pins its roots.
func (r *Repo) DagImport(ctx context.Context, rd io.Reader) (car.ImportResult, error) {
	return car.Import(ctx, rd, r.Store)
}
