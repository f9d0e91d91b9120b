// Command targets serves N scrape targets of M series each on one port, at
// /t/<i>/metrics, for bench/scrapers.sh: counters and gauges in ten metric families,
// whose values move between scrapes.
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// families is the number of metric families a target's series are spread over.
const families = 10

func main() {
	listen := flag.String("listen", "127.0.0.1:18199", "address to listen on")
	targets := flag.Int("targets", 1000, "number of targets")
	series := flag.Int("series", 500, "series per target")
	flag.Parse()
	var scrapes atomic.Int64
	http.HandleFunc("/t/", func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/t/")
		id, _, _ := strings.Cut(rest, "/")
		if n, err := strconv.Atoi(id); err != nil || n < 0 || n >= *targets {
			http.NotFound(w, r)
			return
		}
		k := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		b := make([]byte, 0, *series*64)
		// Ten metric families share the series, so that none has more than a tenth of
		// them (AMP's per-metric quota is 200,000 active series): even ones counters,
		// odd ones gauges.
		for f := range families {
			kind := "counter"
			if f%2 == 1 {
				kind = "gauge"
			}
			b = append(b, "# TYPE bench_metric_"...)
			b = strconv.AppendInt(b, int64(f), 10)
			b = append(b, ' ')
			b = append(b, kind...)
			b = append(b, '\n')
			for i := f; i < *series; i += families {
				b = append(b, "bench_metric_"...)
				b = strconv.AppendInt(b, int64(f), 10)
				b = append(b, `{idx="`...)
				b = strconv.AppendInt(b, int64(i), 10)
				b = append(b, `"} `...)
				if f%2 == 0 {
					b = strconv.AppendInt(b, k*int64(i+1), 10)
				} else {
					b = strconv.AppendFloat(b, float64((k*7+int64(i))%1000)/10, 'f', -1, 64)
				}
				b = append(b, '\n')
			}
		}
		_, _ = w.Write(b)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
