package unixfs

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SymlinkPolicy says what an import does with a symbolic link.
type SymlinkPolicy int

const (
	// SymlinksRefuse fails the import (the default: an audit dataset never
	// silently changes what a path means).
	SymlinksRefuse SymlinkPolicy = iota
	// SymlinksStore stores the link itself as a UnixFS symlink, as kubo
	// does.
	SymlinksStore
)

// AddOptions control how AddPath treats what is not a regular file or
// directory. Hidden files are always included.
type AddOptions struct {
	Symlinks SymlinkPolicy
	// SkipSpecial skips devices, sockets and named pipes (reporting each to
	// Skipped) instead of failing.
	SkipSpecial bool
	// Skipped, if not nil, is told of every path skipped.
	Skipped func(path string, mode fs.FileMode)
}

// SpecialFileError reports a path that is neither a regular file nor a
// directory and that the options do not allow.
type SpecialFileError struct {
	Path string
	Mode fs.FileMode
}

func (e *SpecialFileError) Error() string {
	kind := "a special file"
	switch {
	case e.Mode&fs.ModeSymlink != 0:
		kind = "a symbolic link"
	case e.Mode&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case e.Mode&fs.ModeSocket != 0:
		kind = "a socket"
	case e.Mode&fs.ModeDevice != 0:
		kind = "a device"
	}
	return fmt.Sprintf("%s is %s", e.Path, kind)
}

// AddedFunc is told of every file, symlink and directory once it is
// stored, children before their directory, with its path relative to the
// parent of the path given to AddPath (the names kubo's `ipfs add` prints).
type AddedFunc func(path string, e Entry, isDir bool)

// AddPath imports a file or, recursively, a directory from the local file
// system, hidden files included.
func (im *Importer) AddPath(ctx context.Context, path string, opts AddOptions, added AddedFunc) (Entry, error) {
	return im.addPath(ctx, path, filepath.Base(filepath.Clean(path)), opts, added)
}

func (im *Importer) addPath(ctx context.Context, path, name string, opts AddOptions, added AddedFunc) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	info, err := os.Lstat(path)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	mode := info.Mode()
	switch {
	case mode.IsRegular():
		e, err = im.addFile(ctx, path)
	case mode.IsDir():
		e, err = im.addDir(ctx, path, name, opts, added)
	case mode&fs.ModeSymlink != 0 && opts.Symlinks == SymlinksStore:
		var target string
		if target, err = os.Readlink(path); err == nil {
			e, err = im.Symlink(target)
		}
	default:
		return Entry{}, &SpecialFileError{Path: path, Mode: mode}
	}
	if err != nil {
		return Entry{}, err
	}
	if added != nil {
		added(name, e, mode.IsDir())
	}
	return e, nil
}

func (im *Importer) addFile(ctx context.Context, path string) (Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	e, err := im.File(ctx, f)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

func (im *Importer) addDir(ctx context.Context, path, name string, opts AddOptions, added AddedFunc) (Entry, error) {
	list, err := os.ReadDir(path)
	if err != nil {
		return Entry{}, err
	}
	entries := make([]DirEntry, 0, len(list))
	for _, d := range list {
		childPath := filepath.Join(path, d.Name())
		special := d.Type()&(fs.ModeNamedPipe|fs.ModeSocket|fs.ModeDevice|fs.ModeCharDevice|fs.ModeIrregular) != 0
		if special && opts.SkipSpecial {
			if opts.Skipped != nil {
				opts.Skipped(childPath, d.Type())
			}
			continue
		}
		e, err := im.addPath(ctx, childPath, name+"/"+d.Name(), opts, added)
		if err != nil {
			return Entry{}, err
		}
		entries = append(entries, DirEntry{Name: d.Name(), Entry: e})
	}
	e, err := im.Directory(entries)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}
