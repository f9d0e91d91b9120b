// Package version reports what build of Strata is running.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time (-ldflags "-X github.com/stratametrics/strata/internal/version.Version=v1.2.3").
// Left unset it reads "dev".
var Version = "dev"

// Info describes the running build.
type Info struct {
	Version   string
	Revision  string
	Modified  bool
	GoVersion string
}

// Get reads the build information embedded by the Go toolchain.
func Get() Info {
	info := Info{Version: Version, Revision: "unknown", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	return info
}

// String is the one-line form printed by `strata version`.
func (i Info) String() string {
	rev := i.Revision
	if i.Modified {
		rev += "-modified"
	}
	return fmt.Sprintf("strata %s (revision %s, %s, %s/%s)", i.Version, rev, i.GoVersion, runtime.GOOS, runtime.GOARCH)
}
