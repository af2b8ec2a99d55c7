// Package naming makes the names the sinks give tables, columns, labels
// and collections: a name that does not fit a target's limit, or that is
// taken, gets a suffix from a hash of what it stands for, so that distinct
// collections and fields get distinct names and the same one always the
// same candidates.
//
//	name := naming.Fit(strings.ToLower(coll), coll, 63)
//	for k := 1; taken(name); k++ {
//		name = naming.Suffixed(strings.ToLower(coll), coll, k, 63)
//	}
//
// The sinks store the names they chose (their mapping) and never derive
// them again for a name they mapped: these functions only propose names
// for new ones.
package naming

import (
	"fmt"
	"hash/fnv"
	"unicode/utf8"
)

// SuffixLen is the length of the suffix Suffixed appends: "_" and 8 hex
// digits.
const SuffixLen = 9

// Hash is 8 hex digits of an FNV-1a hash of key and attempt.
func Hash(key string, attempt int) string {
	h := fnv.New32a()
	h.Write([]byte(key))
	if attempt > 1 {
		fmt.Fprintf(h, "#%d", attempt)
	}
	return fmt.Sprintf("%08x", h.Sum32())
}

// Suffixed is name cut to fit limit bytes (at a character boundary)
// followed by "_" and Hash(key, attempt). attempt 0 and 1 give the same
// name; later attempts give others, for when that one is taken too.
func Suffixed(name, key string, attempt, limit int) string {
	return Cut(name, limit-SuffixLen) + "_" + Hash(key, attempt)
}

// Fit is name when it fits limit bytes, else Suffixed(name, key, 0, limit).
func Fit(name, key string, limit int) string {
	if len(name) <= limit {
		return name
	}
	return Suffixed(name, key, 0, limit)
}

// Cut is the longest prefix of s of at most n bytes that does not split a
// UTF-8 character.
func Cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
