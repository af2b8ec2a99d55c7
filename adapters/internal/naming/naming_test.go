package naming

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	long := strings.Repeat("x", 70)
	a, b := Fit(long+"A", long+"A", 63), Fit(long+"B", long+"B", 63)
	if len(a) != 63 || len(b) != 63 || a == b || !strings.HasPrefix(a, strings.Repeat("x", 54)+"_") {
		t.Fatalf("long names %q %q: want 63 bytes, distinct", a, b)
	}
	if Fit("short", "short", 63) != "short" {
		t.Fatal("a name that fits was changed")
	}
	if Suffixed("title", "Title", 0, 63) != Suffixed("title", "Title", 1, 63) || Suffixed("title", "Title", 1, 63) == Suffixed("title", "Title", 2, 63) {
		t.Fatal("attempts 0 and 1 must agree, later ones differ")
	}
	if Suffixed("title", "Title", 1, 63) == Suffixed("title", "title", 1, 63) {
		t.Fatal("names that fold to the same text must get distinct suffixes")
	}
	if got := Cut("aé", 2); got != "a" {
		t.Fatalf("Cut split a character: %q", got)
	}
	if got := Suffixed(strings.Repeat("é", 40), "k", 1, 63); len(got) > 63 || !strings.HasSuffix(got, "_"+Hash("k", 1)) {
		t.Fatalf("multi-byte name cut to %q (%d bytes)", got, len(got))
	}
}
