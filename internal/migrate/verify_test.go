package migrate

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// Answers are compared series by series and point by point: NaN equals NaN, values
// within the relative tolerance are equal, and every kind of difference is named.
func TestCompareMatrices(t *testing.T) {
	s := func(name string, pts map[int64]float64) series {
		return series{labels: labels.FromStrings("__name__", name), points: pts}
	}
	want := map[string]series{
		`{__name__="a"}`: s("a", map[int64]float64{0: 1, 1000: math.NaN(), 2000: 1e12}),
		`{__name__="b"}`: s("b", map[int64]float64{0: 1}),
		`{__name__="c"}`: s("c", map[int64]float64{0: 1, 1000: 2}),
	}
	got := map[string]series{
		`{__name__="a"}`: s("a", map[int64]float64{0: 1, 1000: math.NaN(), 2000: 1e12 + 1}),
		`{__name__="c"}`: s("c", map[int64]float64{0: 1.5, 3000: 4}),
		`{__name__="d"}`: s("d", map[int64]float64{0: 1}),
	}
	c := compareMatrices("q", want, got, 1e-9)
	wantDiffs := []string{
		`{__name__="b"}: only in the Prometheus (1 points)`,
		`{__name__="c"} at 1970-01-01T00:00:00Z: 1 in the Prometheus, 1.5 in the workspace`,
		`{__name__="c"} at 1970-01-01T00:00:01Z: 2 in the Prometheus, nothing in the workspace`,
		`{__name__="c"} at 1970-01-01T00:00:03Z: 4 in the workspace, nothing in the Prometheus`,
		`{__name__="d"}: only in the workspace (1 points)`,
	}
	if c.Total != len(wantDiffs) || strings.Join(c.Differences, "\n") != strings.Join(wantDiffs, "\n") {
		t.Fatalf("differences (%d):\n%s\nwant:\n%s", c.Total, strings.Join(c.Differences, "\n"), strings.Join(wantDiffs, "\n"))
	}
	if c.Series != 3 || c.Points != 5 {
		t.Fatalf("series %d, points %d", c.Series, c.Points)
	}
	if c := compareMatrices("q", want, want, 0); c.Total != 0 {
		t.Fatalf("an answer differs from itself: %v", c.Differences)
	}
}
