package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/core/replica"
)

// Errors of a home directory.
var (
	ErrNoKey        = errors.New("no key in this home: run `tributary init` first")
	ErrUnknownSpace = errors.New("unknown space")
	ErrNoSpace      = errors.New("no space in this home: create one (`tributary space create`) or join one (`tributary join`)")
	ErrManySpaces   = errors.New("this home holds several spaces: name one with --space")
)

// Home is a node's directory: its key and its spaces.
//
//	key                    Ed25519 seed, hex, mode 0600
//	api-token              bearer token of the node's HTTP API, mode 0600
//	lock                   flock held by the process that owns the stores
//	run.json               where the running node serves its API
//	spaces/<space>/db/     Badger: op-log, documents, effect log
//	spaces/<space>/space.json
//	spaces/<space>/addrs.json  members' signed addresses, learned through the space
type Home struct {
	Dir string
	Key core.PrivateKey
	// DiskReserve is the free space writes keep (DefaultDiskReserve; 0
	// turns the check off).
	DiskReserve uint64
	// FreeBytes measures free space (FreeBytes unless a test drives it).
	FreeBytes func(dir string) (uint64, error)

	spacesMu  sync.Mutex
	spacesAt  time.Time // modification time of spaces/ when listed
	spacesMem []SpaceInfo
}

// SpaceInfo is what a home remembers about a space besides its data.
type SpaceInfo struct {
	Space     string   `json:"space"`
	Name      string   `json:"name,omitempty"`
	Bootstrap []string `json:"bootstrap,omitempty"` // peer addresses (from an invite)
	// Proof is a joiner's signed use of its invite (envelope bytes), kept
	// until its grant is known: presented to the peers it connects to as
	// proof of its pending membership.
	Proof []byte `json:"proof,omitempty"`
}

// OpenHome opens dir, which must hold a key.
func OpenHome(dir string) (*Home, error) {
	b, err := os.ReadFile(filepath.Join(dir, "key"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("key file %s: not hex", filepath.Join(dir, "key"))
	}
	k, err := core.PrivateKeyFromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", filepath.Join(dir, "key"), err)
	}
	reserve, err := reserveFromEnv()
	if err != nil {
		return nil, err
	}
	return &Home{Dir: dir, Key: k, DiskReserve: reserve}, nil
}

func reserveFromEnv() (uint64, error) {
	v := os.Getenv(DiskReserveEnv)
	if v == "" {
		return DefaultDiskReserve, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", DiskReserveEnv, err)
	}
	return n, nil
}

// InitHome creates dir with a new key, or returns the existing home.
func InitHome(dir string) (h *Home, created bool, err error) {
	if h, err := OpenHome(dir); err == nil {
		return h, false, nil
	} else if !errors.Is(err, ErrNoKey) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "spaces"), 0o700); err != nil {
		return nil, false, fmt.Errorf("create home: %w", err)
	}
	k, err := core.GenerateKey(nil)
	if err != nil {
		return nil, false, err
	}
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte(hex.EncodeToString(k.Seed())+"\n"), 0o600); err != nil {
		return nil, false, fmt.Errorf("write key: %w", err)
	}
	reserve, err := reserveFromEnv()
	if err != nil {
		return nil, false, err
	}
	h = &Home{Dir: dir, Key: k, DiskReserve: reserve}
	if _, err := h.EnsureToken(); err != nil {
		return nil, false, err
	}
	return h, true, nil
}

func (h *Home) spaceDir(id string) string { return filepath.Join(h.Dir, "spaces", id) }

// AddrsFile is where the node keeps the members' address records it
// learned for a space (mesh.AddrFile), so that after a restart it dials
// them although the peer that told it is gone.
func (h *Home) AddrsFile(id string) string { return filepath.Join(h.spaceDir(id), "addrs.json") }

// Spaces lists the spaces this home holds. The list is read again only
// when the spaces directory changed (a space added or removed), so
// resolving a space on every API request costs one stat.
func (h *Home) Spaces() ([]SpaceInfo, error) {
	fi, err := os.Stat(filepath.Join(h.Dir, "spaces"))
	if err == nil {
		h.spacesMu.Lock()
		cached := h.spacesMem != nil && fi.ModTime().Equal(h.spacesAt)
		out := slices.Clone(h.spacesMem)
		h.spacesMu.Unlock()
		if cached {
			return out, nil
		}
	}
	out, err := h.readSpaces()
	if err == nil && fi != nil {
		h.spacesMu.Lock()
		h.spacesAt, h.spacesMem = fi.ModTime(), slices.Clone(out)
		h.spacesMu.Unlock()
	}
	return out, err
}

func (h *Home) readSpaces() ([]SpaceInfo, error) {
	entries, err := os.ReadDir(filepath.Join(h.Dir, "spaces"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list spaces: %w", err)
	}
	var out []SpaceInfo
	for _, e := range entries {
		info, err := h.readInfo(e.Name())
		if err != nil {
			continue
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Space < out[j].Space })
	return out, nil
}

func (h *Home) readInfo(id string) (SpaceInfo, error) {
	var info SpaceInfo
	b, err := os.ReadFile(filepath.Join(h.spaceDir(id), "space.json"))
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(b, &info)
}

// WriteInfo records what the home knows about a space.
func (h *Home) WriteInfo(info SpaceInfo) error {
	defer h.forgetSpaces()
	if err := os.MkdirAll(h.spaceDir(info.Space), 0o700); err != nil {
		return fmt.Errorf("space dir: %w", err)
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	return os.WriteFile(filepath.Join(h.spaceDir(info.Space), "space.json"), b, 0o600)
}

// Info returns the recorded info of a space.
func (h *Home) Info(id string) (SpaceInfo, error) {
	info, err := h.readInfo(id)
	if err != nil {
		return info, fmt.Errorf("space %s: %w", id, ErrUnknownSpace)
	}
	return info, nil
}

// Resolve turns a --space argument (full ID, unique suffix or name; empty
// when the home holds one space) into a space ID.
func (h *Home) Resolve(arg string) (string, error) {
	spaces, err := h.Spaces()
	if err != nil {
		return "", err
	}
	if arg == "" {
		switch len(spaces) {
		case 0:
			return "", ErrNoSpace
		case 1:
			return spaces[0].Space, nil
		}
		return "", ErrManySpaces
	}
	var match []string
	for _, s := range spaces {
		if s.Space == arg {
			return s.Space, nil
		}
		if strings.HasSuffix(s.Space, arg) || s.Name == arg {
			match = append(match, s.Space)
		}
	}
	if len(match) == 1 {
		return match[0], nil
	}
	if len(match) > 1 {
		return "", fmt.Errorf("space %q matches %d spaces: give more of the ID", arg, len(match))
	}
	return "", fmt.Errorf("space %q: %w (this home holds %d)", arg, ErrUnknownSpace, len(spaces))
}

// OpenSpace opens a space this home holds.
func (h *Home) OpenSpace(ctx context.Context, id string) (*Space, error) {
	info, err := h.Info(id)
	if err != nil {
		return nil, err
	}
	sid, err := core.ParseID(info.Space)
	if err != nil {
		return nil, err
	}
	return OpenSpaceDir(filepath.Join(h.spaceDir(id), "db"), h.replicaOptions(sid))
}

// replicaOptions are the options every space of the home opens with.
func (h *Home) replicaOptions(space core.ID) replica.Options {
	return replica.Options{SyncWrites: true, Space: space, WriteGuard: DiskGuard(h.Dir, h.DiskReserve, h.FreeBytes),
		Now: func() uint64 { return uint64(time.Now().UnixMilli()) }}
}

// CreateSpaceDir opens a fresh store for a space being founded, in a
// staging directory renamed to its ID by CommitSpace.
func (h *Home) CreateSpaceDir() (string, *Space, error) {
	dir, err := os.MkdirTemp(filepath.Join(h.Dir, "spaces"), ".new-")
	if err != nil {
		return "", nil, fmt.Errorf("create space: %w", err)
	}
	sp, err := OpenSpaceDir(filepath.Join(dir, "db"), h.replicaOptions(core.ID{}))
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, sp, nil
}

// RemoveSpace deletes a space the home holds, its store included (a
// join a peer refused). Close the space first.
func (h *Home) RemoveSpace(id string) error {
	defer h.forgetSpaces()
	if err := os.RemoveAll(h.spaceDir(id)); err != nil {
		return fmt.Errorf("remove space %s: %w", id, err)
	}
	return nil
}

// forgetSpaces drops the cached list (a space's info was written).
func (h *Home) forgetSpaces() {
	h.spacesMu.Lock()
	h.spacesMem = nil
	h.spacesMu.Unlock()
}

// CommitSpace moves a staged space into place under its ID.
func (h *Home) CommitSpace(staging string, info SpaceInfo) error {
	if err := os.Rename(staging, h.spaceDir(info.Space)); err != nil {
		return fmt.Errorf("create space: %w", err)
	}
	return h.WriteInfo(info)
}
