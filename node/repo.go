package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"auditnet/storage"
)

// Role is what a node does in the network (DESIGN.md, "Roles").
type Role string

// Roles.
const (
	RoleAgency     Role = "agency"
	RoleDatacenter Role = "datacenter"
	RoleOffice     Role = "office"
	RoleAuditor    Role = "auditor"
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAgency, RoleDatacenter, RoleOffice, RoleAuditor:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want agency, datacenter, office or auditor)", s)
}

// Files and directories of a repo.
const (
	configFile = "config.json"
	lockFile   = "repo.lock"
	blocksDir  = "blocks"
)

// ConfigVersion is the version of config.json this program writes.
const ConfigVersion = 1

// Config is a repo's config.json.
type Config struct {
	Version int  `json:"version"`
	Role    Role `json:"role"`
}

// Errors the CLI turns into advice.
var (
	ErrNotInitialised = errors.New("repo not initialised")
	ErrLocked         = errors.New("repo is locked by another process")
	ErrAlreadyExists  = errors.New("repo already initialised")
)

// DefaultRepoDir is $AUDITNET_REPO, else ~/.auditnet.
func DefaultRepoDir() (string, error) {
	if d := os.Getenv("AUDITNET_REPO"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the repo: no --repo, no $AUDITNET_REPO and no home directory: %w", err)
	}
	return filepath.Join(home, ".auditnet"), nil
}

// InitRepo creates a repo in dir (which may exist but must not hold a
// repo) for a node of the given role.
func InitRepo(dir string, role Role) error {
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return fmt.Errorf("%s: %w", dir, ErrAlreadyExists)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create repo %s: %w", dir, err)
	}
	lock, err := lockRepo(dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	// Without a config the repo was never initialised, so a block store
	// left by an init that crashed holds nothing anyone was told about;
	// starting it afresh avoids opening a half-created index.
	if err := os.RemoveAll(filepath.Join(dir, blocksDir)); err != nil {
		return fmt.Errorf("clear unfinished repo %s: %w", dir, err)
	}
	st, err := storage.Open(filepath.Join(dir, blocksDir), storage.Options{})
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(Config{Version: ConfigVersion, Role: role}, "", "  ")
	if err != nil {
		return err
	}
	// The config is written last: a repo without it is not initialised.
	if err := writeFileAtomic(filepath.Join(dir, configFile), append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// Repo is an open repo: its config and its block store, held under an
// exclusive lock so that one process at a time uses it.
type Repo struct {
	Dir    string
	Config Config
	Store  *storage.Store
	lock   *os.File
}

// OpenRepo locks and opens the repo in dir.
func OpenRepo(dir string, logger *slog.Logger) (*Repo, error) {
	raw, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotInitialised)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("read config %s: %w", filepath.Join(dir, configFile), err)
	}
	if cfg.Version != ConfigVersion {
		return nil, fmt.Errorf("repo %s has config version %d, this program reads %d", dir, cfg.Version, ConfigVersion)
	}
	lock, err := lockRepo(dir)
	if err != nil {
		return nil, err
	}
	st, err := storage.Open(filepath.Join(dir, blocksDir), storage.Options{Logger: logger})
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &Repo{Dir: dir, Config: cfg, Store: st, lock: lock}, nil
}

// Close closes the store and releases the lock.
func (r *Repo) Close() error {
	err := r.Store.Close()
	return errors.Join(err, r.lock.Close())
}

// lockRepo takes the repo's exclusive lock (flock, released by the kernel
// when the process dies, so a killed process never leaves a stale lock).
func lockRepo(dir string) (*os.File, error) {
	name := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(name); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s%s: %w", dir, holder, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// writeFileAtomic writes a file through a synced temporary and a rename.
func writeFileAtomic(name string, data []byte, perm fs.FileMode) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
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
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
