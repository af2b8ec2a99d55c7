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

// TokenFileEnv names a file holding the API token instead of the home's
// (a mounted secret): the node serves with it and the CLI sends it.
const TokenFileEnv = "TRIBUTARY_API_TOKEN_FILE"

// MinTokenLen is the shortest token accepted.
const MinTokenLen = 32

// tokenPath is where the token lives and whether it is external (a
// secret this process must not rewrite).
func (h *Home) tokenPath() (string, bool) {
	if p := os.Getenv(TokenFileEnv); p != "" {
		return p, true
	}
	return filepath.Join(h.Dir, tokenFile), false
}

// Token returns the API token.
func (h *Home) Token() (string, error) {
	path, external := h.tokenPath()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !external {
		return "", fmt.Errorf("%s: %w (run `tributary token rotate`)", h.Dir, ErrNoToken)
	}
	if err != nil {
		return "", fmt.Errorf("read API token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("API token in %s is %d characters: want at least %d", path, len(tok), MinTokenLen)
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
	if path, external := h.tokenPath(); external {
		return "", fmt.Errorf("the API token comes from %s (%s): rotate that secret and restart the node", path, TokenFileEnv)
	}
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
