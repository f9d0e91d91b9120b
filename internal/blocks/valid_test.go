package blocks

import (
	"regexp"
	"testing"
)

// ValidWorkspace accepts exactly what the pattern ^[0-9A-Za-z][-.0-9A-Z_a-z]*$ accepts.
func TestValidWorkspace(t *testing.T) {
	re := regexp.MustCompile(`^[0-9A-Za-z][-.0-9A-Z_a-z]*$`)
	cases := []string{"", "ws-1", "ws-0a1b2c3d-4e5f-6789-abcd-ef0123456789", "-ws", ".", "..", "a..b", "a/b",
		"a b", "_a", "a_", "A.B-c_9", "ws-é", "ws\x00", "Z", "0", "meta", "ws-1/../x"}
	for c := 0; c < 256; c++ {
		cases = append(cases, string(rune(c)), "a"+string(rune(c)), string([]byte{byte(c)}), "a"+string([]byte{byte(c)}))
	}
	for _, s := range cases {
		if got, want := ValidWorkspace(s), re.MatchString(s); got != want {
			t.Errorf("ValidWorkspace(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzValidWorkspace(f *testing.F) {
	re := regexp.MustCompile(`^[0-9A-Za-z][-.0-9A-Z_a-z]*$`)
	f.Add("ws-1")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidWorkspace(s), re.MatchString(s); got != want {
			t.Errorf("ValidWorkspace(%q) = %v, want %v", s, got, want)
		}
	})
}
