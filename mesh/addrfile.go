package mesh

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// AddrFile is an AddrStore in a JSON file (a list of AddrRecord), written
// whole to a temporary file and renamed over the old one, so a crash
// leaves the old records or the new ones. Records are checked again when
// the node loads them.
type AddrFile struct {
	Path string
	mu   sync.Mutex
}

var _ AddrStore = (*AddrFile)(nil)

// Load implements AddrStore.
func (f *AddrFile) Load() ([]AddrRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read peer addresses: %w", err)
	}
	var recs []AddrRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("read peer addresses %s: %w", f.Path, err)
	}
	return recs, nil
}

// Save implements AddrStore.
func (f *AddrFile) Save(recs []AddrRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if recs == nil {
		recs = []AddrRecord{}
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), filepath.Base(f.Path)+".*")
	if err != nil {
		return fmt.Errorf("save peer addresses: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.Path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save peer addresses: %w", err)
	}
	return nil
}
