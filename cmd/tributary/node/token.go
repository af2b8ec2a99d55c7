package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tokenFile holds the bearer token of the node's HTTP API (mode 0600).
// The CLI reads it to talk to the running node; other clients are given
// it by the operator.
const tokenFile = "api-token"

// ErrNoToken: the home has no API token yet.
var ErrNoToken = errors.New("no API token in this home")

// Token returns the home's API token.
func (h *Home) Token() (string, error) {
	b, err := os.ReadFile(filepath.Join(h.Dir, tokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s: %w (run `tributary token rotate`)", h.Dir, ErrNoToken)
	}
	if err != nil {
		return "", fmt.Errorf("read API token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		return "", fmt.Errorf("API token in %s is too short: run `tributary token rotate`", filepath.Join(h.Dir, tokenFile))
	}
	return tok, nil
}

// EnsureToken returns the home's token, creating one if the home has none
// (homes made by older versions).
func (h *Home) EnsureToken() (string, error) {
	tok, err := h.Token()
	if errors.Is(err, ErrNoToken) {
		return h.RotateToken()
	}
	return tok, err
}

// RotateToken replaces the home's token with a new random one and returns
// it; clients holding the old one are refused from then on.
func (h *Home) RotateToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := "trt_" + hex.EncodeToString(b[:])
	tmp := filepath.Join(h.Dir, tokenFile+".tmp")
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write API token: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(h.Dir, tokenFile)); err != nil {
		return "", fmt.Errorf("write API token: %w", err)
	}
	return tok, nil
}
