package remotewrite

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

func decodeOneSeries(t *testing.T, ls ...prompb.Label) *Series {
	t.Helper()
	b, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: ls, Samples: []prompb.Sample{{Value: 1}}}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewDecoder(Options{}).Decode(V1, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Release)
	return &r.Series[0]
}

// Series.String ends up in answers and logs: long values are cut, and so are labels
// beyond about 2 KiB, each cut said.
func TestSeriesStringIsBounded(t *testing.T) {
	s := decodeOneSeries(t, prompb.Label{Name: "__name__", Value: "m"}, prompb.Label{Name: "job", Value: "api"})
	if got := s.String(); got != `{__name__="m", job="api"}` {
		t.Errorf("short series: %s", got)
	}

	long := strings.Repeat("é", 200) // 400 bytes: the cut falls inside a rune
	s = decodeOneSeries(t, prompb.Label{Name: "__name__", Value: "m"}, prompb.Label{Name: "a", Value: long}, prompb.Label{Name: "b", Value: "ok"})
	want := `{__name__="m", a="` + strings.Repeat("é", 128) + `"…+144 bytes, b="ok"}`
	if got := s.String(); got != want {
		t.Errorf("long value:\n got %s\nwant %s", got, want)
	}

	s = decodeOneSeries(t, prompb.Label{Name: strings.Repeat("n", 300), Value: "v"})
	if got := s.String(); got != "{"+strings.Repeat("n", 256)+`…+44 bytes="v"}` {
		t.Errorf("long name: %s", got)
	}

	ls := []prompb.Label{{Name: "__name__", Value: "m"}}
	for i := range 69 {
		ls = append(ls, prompb.Label{Name: "l" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Value: strings.Repeat("v", 2048)})
	}
	got := decodeOneSeries(t, ls...).String()
	if len(got) > maxStringSeries+maxStringValue+100 || !strings.HasSuffix(got, " more labels}") {
		t.Errorf("70 labels of 2 KiB rendered in %d bytes: …%s", len(got), got[max(0, len(got)-80):])
	}
}
