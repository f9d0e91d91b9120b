// Command targets serves N scrape targets of M series each on one port, at
// /t/<i>/metrics, for bench/scrapers.sh: node-exporter-like counters and gauges whose
// values move between scrapes.
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

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
		b = append(b, "# TYPE bench_requests_total counter\n"...)
		for i := 0; i < *series; i += 2 {
			b = append(b, `bench_requests_total{handler="h`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, `",code="200"} `...)
			b = strconv.AppendInt(b, k*int64(i+1), 10)
			b = append(b, '\n')
		}
		b = append(b, "# TYPE bench_temperature_celsius gauge\n"...)
		for i := 1; i < *series; i += 2 {
			b = append(b, `bench_temperature_celsius{sensor="s`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, `"} `...)
			b = strconv.AppendFloat(b, float64((k*7+int64(i))%1000)/10, 'f', -1, 64)
			b = append(b, '\n')
		}
		_, _ = w.Write(b)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
