package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/p2p"
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
	configFile    = "config.json"
	lockFile      = "repo.lock"
	blocksDir     = "blocks"
	identityFile  = "identity.key"   // the node key, mode 0600
	tokenFile     = "api.token"      // the API's bearer token, mode 0600
	apiFile       = "api"            // the running daemon's API URL
	swarmKeyFile  = "swarm.key"      // optional private-network key
	reprovideFile = "reprovide.json" // the DHT announcement schedule
	dhtDir        = "dht"            // the DHT's provider records
)

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
// repo) for a node: its key, its API token, its block store and its
// config.
func InitRepo(dir string, opts InitOptions) error {
	if _, err := ParseRole(string(opts.Role)); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return fmt.Errorf("%s: %w", dir, ErrAlreadyExists)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create repo %s: %w", dir, err)
	}
	lock, err := lockRepo(dir, false)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := clearUnfinishedInit(dir); err != nil {
		return err
	}
	st, err := storage.Open(filepath.Join(dir, blocksDir), storage.Options{})
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	id, err := ensureSecrets(dir)
	if err != nil {
		return err
	}
	cfg := defaultConfig(opts, id)
	if _, err := cfg.Parse(); err != nil {
		return err
	}
	ensureReserve(dir)
	// The config is written last: a repo without it is not initialised.
	return writeConfig(dir, cfg)
}

// ensureSecrets makes the node key and the API token if they are missing
// (a new repo, or one from before the network existed) and returns the
// node's peer ID.
func ensureSecrets(dir string) (peer.ID, error) {
	keyPath := filepath.Join(dir, identityFile)
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		sk, err := p2p.NewIdentity()
		if err != nil {
			return "", err
		}
		if err := p2p.WriteIdentity(keyPath, sk); err != nil {
			return "", err
		}
	}
	sk, err := p2p.ReadIdentity(keyPath)
	if err != nil {
		return "", err
	}
	tokenPath := filepath.Join(dir, tokenFile)
	if _, err := os.Stat(tokenPath); errors.Is(err, fs.ErrNotExist) {
		tok := make([]byte, 32)
		if _, err := rand.Read(tok); err != nil {
			return "", err
		}
		if err := storage.WriteFileAtomic(storage.OSFS{}, tokenPath, []byte(hex.EncodeToString(tok)+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write API token: %w", err)
		}
	}
	return p2p.PeerIDOf(sk)
}

// ErrOrphanStore is returned by InitRepo for a directory with no config
// but a block store holding data: re-initialising would throw the data
// away, so the user must restore the config or move the store first.
var ErrOrphanStore = errors.New("holds a block store with data but no config.json; restore the config instead of re-initialising (or move blocks/ away)")

// clearUnfinishedInit deals with a block store found in a directory that
// has no config. An init that crashed before writing its config leaves an
// empty (possibly half-created) store: it is removed. A store that holds
// blocks or pins is someone's data whose config went missing: it is kept
// and the init refused.
func clearUnfinishedInit(dir string) error {
	blocks := filepath.Join(dir, blocksDir)
	if _, err := os.Stat(blocks); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if st, err := storage.Open(blocks, storage.Options{ReadOnly: true}); err == nil {
		stat, serr := st.Stat(context.Background())
		st.Close()
		if serr != nil {
			return fmt.Errorf("inspect the block store in %s: %w", dir, serr)
		}
		if stat.Blocks > 0 || len(stat.Pins) > 0 {
			return fmt.Errorf("%s %w (%d blocks, %d pins)", dir, ErrOrphanStore, stat.Blocks, len(stat.Pins))
		}
	} else if packs, _ := filepath.Glob(filepath.Join(blocks, "packs", "*.pack")); len(packs) > 0 {
		return fmt.Errorf("%s %w (its index does not open: %v)", dir, ErrOrphanStore, err)
	}
	if err := os.RemoveAll(blocks); err != nil {
		return fmt.Errorf("clear unfinished repo %s: %w", dir, err)
	}
	return nil
}

// Repo is an open repo: its config and its block store, held under a
// lock: exclusive for a process that writes, shared among readers.
type Repo struct {
	Dir    string
	Config Config
	Store  *storage.Store
	// ReserveReleased is set when the disk was full and the repo's reserve
	// file was deleted so that this open could proceed.
	ReserveReleased bool
	lock            *os.File
	readOnly        bool
}

// OpenOptions control OpenRepo.
type OpenOptions struct {
	// ReadOnly opens the store without writing anything, under a shared
	// lock: it works on a full disk and beside other readers.
	ReadOnly bool
	Logger   *slog.Logger
}

// reserveFile holds disk space back for a full disk: a write command that
// cannot open the store for lack of space deletes it, so `pin rm` and
// `repo gc` can still run and free space. It is made again once there is
// room.
const (
	reserveFile    = "reserve"
	maxReserveSize = 32 << 20
	minReserveSize = 1 << 20
)

// OpenRepo locks and opens the repo in dir.
func OpenRepo(dir string, opts OpenOptions) (*Repo, error) {
	cfg, upgrade, err := readConfig(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotInitialised)
	}
	if err != nil {
		return nil, err
	}
	lock, err := lockRepo(dir, opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	if upgrade && !opts.ReadOnly {
		// A repo from before the network: give it a key, a token and the
		// network defaults.
		id, err := ensureSecrets(dir)
		if err == nil {
			cfg.Identity.PeerID = id.String()
			err = writeConfig(dir, cfg)
		}
		if err != nil {
			lock.Close()
			return nil, fmt.Errorf("upgrade config of %s: %w", dir, err)
		}
	}
	r := &Repo{Dir: dir, Config: cfg, lock: lock, readOnly: opts.ReadOnly}
	sopts := storage.Options{Logger: opts.Logger, ReadOnly: opts.ReadOnly}
	r.Store, err = storage.Open(filepath.Join(dir, blocksDir), sopts)
	if errors.Is(err, syscall.ENOSPC) && !opts.ReadOnly {
		if rerr := os.Remove(filepath.Join(dir, reserveFile)); rerr == nil {
			r.ReserveReleased = true
			r.Store, err = storage.Open(filepath.Join(dir, blocksDir), sopts)
		}
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	return r, nil
}

// Close closes the store, puts the reserve back if it was used and there
// is room again, and releases the lock.
func (r *Repo) Close() error {
	err := r.Store.Close()
	if !r.readOnly {
		ensureReserve(r.Dir)
	}
	return errors.Join(err, r.lock.Close())
}

// ensureReserve makes the reserve file if it is missing and the disk has
// room for twice its size; otherwise it tries again next time. The reserve
// is 1/64 of the file system, between 1 and 32 MiB.
func ensureReserve(dir string) {
	name := filepath.Join(dir, reserveFile)
	if _, err := os.Stat(name); err == nil {
		return
	}
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return
	}
	size := min(max(st.Blocks*uint64(st.Bsize)/64, minReserveSize), maxReserveSize)
	if st.Bavail*uint64(st.Bsize) < 2*size {
		return
	}
	f, err := os.OpenFile(name+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	// Real blocks, not a sparse file: the space must be taken now.
	chunk := make([]byte, 1<<20)
	var werr error
	for written := uint64(0); written < size && werr == nil; written += uint64(len(chunk)) {
		_, werr = f.Write(chunk)
	}
	serr := f.Sync()
	if cerr := f.Close(); werr != nil || serr != nil || cerr != nil {
		os.Remove(name + ".tmp")
		return
	}
	os.Rename(name+".tmp", name)
}

// lockRepo takes the repo's lock: exclusive, or shared for readers (flock,
// released by the kernel when the process dies, so a killed process never
// leaves a stale lock).
func lockRepo(dir string, shared bool) (*os.File, error) {
	name := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", name, err)
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(name); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf(" (last writer: pid %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s%s: %w", dir, holder, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if !shared {
		if err := f.Truncate(0); err == nil {
			f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
	}
	return f, nil
}
