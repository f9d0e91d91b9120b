package remotewrite

import (
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
)

// Version is the remote write protocol version of a request.
type Version uint8

const (
	// V1 is remote write 1.0: message prometheus.WriteRequest.
	V1 Version = 1
	// V2 is remote write 2.0: message io.prometheus.write.v2.Request.
	V2 Version = 2
)

// String returns the fully qualified protobuf message name of the version,
// as used in the Content-Type proto parameter.
func (v Version) String() string {
	switch v {
	case V1:
		return protoV1
	case V2:
		return protoV2
	default:
		return "unknown"
	}
}

// Request is one decoded remote write request of either version.
//
// Ownership: every byte slice reachable from a Request (label names and
// values, symbols, metadata strings) aliases the decoded buffer, and every
// slice of samples, exemplars, histograms or exemplar labels is a window
// into arenas the Request reuses. All of it is valid until Release, Reset
// or the next Unmarshal of the same Request. A Request is not safe for
// concurrent mutation; concurrent reads are fine. Series point back to
// their Request: do not copy a Request by value.
type Request struct {
	Version Version

	// Series are the request's time series in wire order. A v2 request
	// may repeat the same labels in several series (for instance to carry
	// different metadata or exemplars).
	Series []Series

	// Metadata is remote write 1.0's request-level metric metadata. It is
	// empty for v2, which carries metadata per series (Series.Metadata()).
	Metadata []Metadata

	// Symbols is remote write 2.0's symbols table, already checked to
	// cover every reference. Series resolve labels and metadata against it
	// on access. Empty for v1.
	Symbols [][]byte

	// buf holds the decompressed body when the request came from
	// Decoder.DecodeBody; it is reused across decodes.
	buf []byte
	// pool is where Release returns the request; nil for a Request the
	// caller allocated.
	pool *sync.Pool

	// Arenas: Series fields are capacity-limited windows into these.
	exemplarLabels []Label
	samples        []Sample
	exemplars      []Exemplar
	histograms     []Histogram
	spans          []histogram.Span
	ints           []int64
	floats         []float64

	// v2 decoding keeps the timeseries field ranges found in the first
	// pass, because symbols may follow the series that use them.
	tsRanges [][2]int
	// hs collects one histogram's repeated fields, which the wire may
	// interleave, before they are moved into the arenas.
	hs histScratch
}

// Series is one time series of a request. Its slices are windows into the
// Request's arenas; see Request for how long they stay valid.
//
// Labels are not materialised: the series remembers where they are in the
// buffer, already validated, and Labels, AppendLabels, AppendKey and
// ToLabels read them from there. That keeps decoding from writing out
// every label of every series, which was most of its cost, when a known
// series needs only its key.
type Series struct {
	Samples    []Sample
	Exemplars  []Exemplar
	Histograms []Histogram

	req *Request // For the v2 symbols table.
	// labels is where the labels are on the wire: for v1 the run of
	// fields from the first Label field to the last; for v2 either the
	// payload of the one packed labels_refs field or, if the refs were
	// split, the run of fields from the first labels_refs field to the
	// last.
	labels    []byte
	numLabels uint32
	layout    labelLayout
	// noMeta is set by DropMetadata.
	noMeta bool

	// v2 metadata, resolved on demand.
	metaType         MetricType
	helpRef, unitRef uint32
}

type labelLayout uint8

const (
	v1Contiguous labelLayout = iota // Every field in labels is a Label.
	v1Mixed                         // labels has other fields in between.
	v2Packed                        // labels is one packed run of refs.
	v2Fields                        // labels is a run of fields.
)

// Label is a label name/value pair aliasing the request buffer.
type Label struct {
	Name, Value []byte
}

// Sample is a float sample.
type Sample struct {
	Value     float64
	Timestamp int64 // Milliseconds since the epoch.
	// StartTimestamp is v2's optional start (created) timestamp in
	// milliseconds; zero means unset and is always zero for v1.
	StartTimestamp int64
}

// Exemplar is an exemplar of a series. Unlike series labels, exemplar
// labels are materialised at decode time: exemplars are rare. They alias
// the request buffer.
type Exemplar struct {
	Labels    []Label
	Value     float64
	Timestamp int64 // Milliseconds; zero means no timestamp.
}

// MetricType is the metric type from metadata. Both protocol versions use
// the same numbering; unknown numbers are kept as sent.
type MetricType int32

// Metric types, numbered as on the wire.
const (
	MetricTypeUnknown MetricType = iota
	MetricTypeCounter
	MetricTypeGauge
	MetricTypeHistogram
	MetricTypeGaugeHistogram
	MetricTypeSummary
	MetricTypeInfo
	MetricTypeStateset
)

// Valid reports whether t is one of the types both protocol versions define
// (0, unknown or unspecified, to 7, stateset).
func (t MetricType) Valid() bool { return t >= MetricTypeUnknown && t <= MetricTypeStateset }

// String returns the type as Prometheus' model.MetricType spells it
// ("counter", "gaugehistogram", ...), "unknown" for anything unrecognised.
func (t MetricType) String() string {
	switch t {
	case MetricTypeCounter:
		return "counter"
	case MetricTypeGauge:
		return "gauge"
	case MetricTypeHistogram:
		return "histogram"
	case MetricTypeGaugeHistogram:
		return "gaugehistogram"
	case MetricTypeSummary:
		return "summary"
	case MetricTypeInfo:
		return "info"
	case MetricTypeStateset:
		return "stateset"
	default:
		return "unknown"
	}
}

// Metadata is metric metadata: request-level in v1 (Request.Metadata),
// per series in v2 (Series.Metadata). Byte slices alias the request buffer.
type Metadata struct {
	Type MetricType
	// MetricFamilyName is set by v1 only.
	MetricFamilyName []byte
	Help             []byte
	Unit             []byte
}

// ResetHint is a native histogram's counter reset hint as sent; the values
// match histogram.CounterResetHint.
type ResetHint int32

// Histogram is a native histogram sample, integer or float. Slices are
// windows into the Request's arenas; use ToIntHistogram or
// ToFloatHistogram for a copy the TSDB may keep.
type Histogram struct {
	// IsFloat reports whether the count was sent as a float (count_float),
	// which makes this a float histogram. Which of the pairs below is
	// meaningful follows from it: CountInt, ZeroCountInt and the *Deltas
	// for integer histograms, CountFloat, ZeroCountFloat and the *Counts
	// for float histograms.
	IsFloat bool

	// Count and ZeroCount are protobuf oneofs: only the variant sent last is
	// non-zero, the other reads as zero.
	CountInt       uint64
	CountFloat     float64
	ZeroCountInt   uint64
	ZeroCountFloat float64

	Sum           float64
	Schema        int32
	ZeroThreshold float64

	NegativeSpans  []histogram.Span
	NegativeDeltas []int64   // Integer histograms: delta to the previous bucket.
	NegativeCounts []float64 // Float histograms: absolute counts.
	PositiveSpans  []histogram.Span
	PositiveDeltas []int64
	PositiveCounts []float64

	ResetHint ResetHint
	Timestamp int64 // Milliseconds.

	// CustomValues are the bucket bounds of custom-bucket (NHCB, schema
	// -53) histograms.
	CustomValues []float64

	// StartTimestamp is v2's optional start timestamp; zero means unset.
	StartTimestamp int64
}

// histScratch gathers the repeated fields of the histogram being decoded.
type histScratch struct {
	negSpans, posSpans   []histogram.Span
	negDeltas, posDeltas []int64
	negCounts, posCounts []float64
	custom               []float64
}

func (s *histScratch) reset() {
	s.negSpans, s.posSpans = s.negSpans[:0], s.posSpans[:0]
	s.negDeltas, s.posDeltas = s.negDeltas[:0], s.posDeltas[:0]
	s.negCounts, s.posCounts = s.negCounts[:0], s.posCounts[:0]
	s.custom = s.custom[:0]
}

// Reset empties the request, keeping its buffers for reuse. Everything
// previously handed out becomes invalid.
func (r *Request) Reset() {
	r.Version = 0
	r.Series = r.Series[:0]
	r.Metadata = r.Metadata[:0]
	r.Symbols = r.Symbols[:0]
	r.exemplarLabels = r.exemplarLabels[:0]
	r.samples = r.samples[:0]
	r.exemplars = r.exemplars[:0]
	r.histograms = r.histograms[:0]
	r.spans = r.spans[:0]
	r.ints = r.ints[:0]
	r.floats = r.floats[:0]
	r.tsRanges = r.tsRanges[:0]
}

// Release resets the request and, if it came from a Decoder, returns it to
// the decoder's pool. The request and everything obtained from it must not
// be used afterwards. Release on nil is a no-op.
func (r *Request) Release() {
	if r == nil {
		return
	}
	r.Reset()
	if p := r.pool; p != nil {
		p.Put(r)
	}
}

// Counts returns the number of float samples, histogram samples and
// exemplars received in the request: the upper bounds of what remote write
// 2.0's X-Prometheus-Remote-Write-*-Written response headers report.
func (r *Request) Counts() (samples, histograms, exemplars int) {
	return len(r.samples), len(r.histograms), len(r.exemplars)
}
