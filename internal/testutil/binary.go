package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FindBinary returns the path of a client or server binary that tests start: on PATH,
// else in $(go env GOPATH)/bin, where the .ci/install-*.sh scripts put what they build.
func FindBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("%s is not on PATH, and go env GOPATH failed: %w", name, err)
	}
	var tried []string
	for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
		p := filepath.Join(dir, "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("%s is not on PATH nor at %s", name, strings.Join(tried, ", "))
}
