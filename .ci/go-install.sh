# Sourced by the .ci/install-*.sh scripts: builds a test tool from the Go module proxy as
# a standalone binary, not as a dependency of our go.mod.

# go_install_tool NAME MODULE VERSION PACKAGE [go install flags...] installs PACKAGE (of
# MODULE at VERSION) as $(go env GOPATH)/bin/NAME. Does nothing when the binary there was
# built from that module version.
go_install_tool() {
	local name=$1 module=$2 version=$3 pkg=$4
	shift 4
	local bindir bin tmp
	bindir="$(go env GOPATH | cut -d: -f1)/bin"
	bin="$bindir/$name"
	if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
		echo "$name ($module $version) already installed at $bin"
		return 0
	fi
	echo "installing $name ($module $version) into $bin"
	mkdir -p "$bindir"
	# Built in a directory of its own, then moved into place under NAME: go install names
	# a binary after its package (goaws' is "cmd").
	tmp="$(mktemp -d)"
	# With an @version argument go install ignores our go.mod; GOFLAGS is cleared so that
	# a flag meant for our module (-mod=vendor, say) cannot break the build.
	if ! GOBIN="$tmp" GOFLAGS= go install "$@" "$pkg@$version"; then
		rm -rf "$tmp"
		return 1
	fi
	mv -f "$tmp"/* "$bin"
	rm -rf "$tmp"
	go version -m "$bin" | head -3
}
