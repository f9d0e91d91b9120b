# The single entry point for building, running and testing Strata.
GO ?= go

.PHONY: all build run test fmt-check vet bench docs clean fuzz-smoke

all: build

build:
	$(GO) build -o bin/strata ./cmd/strata

# Starts Strata with embedded defaults: HTTP on 127.0.0.1:8080, data under ./data.
run:
	$(GO) run ./cmd/strata server

# Everything CI runs: formatting, vet, the config-reference drift check and all tests
# (unit and integration, with the race detector), then the query differential test in
# full, which the race detector slows tenfold.
test: fmt-check vet
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run '^TestQueryDifferential$$' ./internal/app

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Runs every fuzz target briefly (CI runs this after the tests); FUZZTIME=5m for longer.
FUZZTIME ?= 8s
FUZZ_TARGETS = \
	./internal/auth/sigv4:FuzzParseAuthorization \
	./internal/auth/sigv4:FuzzCanonicalRequest \
	./internal/auth/sigv4:FuzzVerify \
	./internal/auth/policy:FuzzParse \
	./internal/auth:FuzzParseIdentities \
	./internal/auth/session:FuzzOpen \
	./internal/remotewrite:FuzzDecodeV1 \
	./internal/remotewrite:FuzzDecodeV2 \
	./internal/query:FuzzParseTime \
	./internal/query:FuzzDecodeExtent \
	./internal/controlplane:FuzzCheckRuleFile \
	./internal/controlplane:FuzzCheckDefinition \
	./internal/alertmanager:FuzzParseDefinition
# A run that ends with only "context deadline exceeded" (the fuzzing engine stopping a
# worker at -fuzztime) and writes no failing input is not a finding.
fuzz-smoke:
	@failed=""; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
		out=$$($(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg 2>&1); rc=$$?; echo "$$out"; \
		if [ $$rc -ne 0 ]; then \
			if echo "$$out" | grep -q "Failing input written to" || ! echo "$$out" | grep -q "context deadline exceeded"; then \
				failed="$$failed $$t"; \
			else echo "(the fuzzer stopped at its deadline without a finding)"; fi; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets that failed:$$failed"; exit 1; fi

# Regenerates docs/configuration.md and docs/security.md from the code (tests fail when stale).
docs:
	$(GO) run ./cmd/strata config-reference > docs/configuration.md
	STRATA_ROOT_ACCESS_KEY_ID=AKIDDOCSGENERATOR0001 STRATA_ROOT_SECRET_ACCESS_KEY=docs-generator-secret-000000 \
		$(GO) run ./cmd/strata security-reference > docs/security.md

clean:
	rm -rf bin
